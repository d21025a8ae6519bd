"""`edit` and `align`: a photo through the photo flow (photo.py) to PNGs."""
from __future__ import annotations

from .common import (add_device, add_face_filter, add_input, add_quiet, face_filter, face_index, numbered, steps,
                     warn_about_model)
from .identity import add_tuning_args


def add_parser(sub) -> None:
    e = sub.add_parser("edit", help="edit a face photo with a text")
    e.add_argument("--model", required=True, help="bundle (.safetensors)")
    add_input(e, "the photo", "--image")
    e.add_argument("--text", required=True, action="append",
                   help="the target description; repeat for several edits of the same photo")
    e.add_argument("-o", "--output", required=True,
                   help="output PNG (with several --text: OUT_0.png, OUT_1.png, ...)")
    e.add_argument("--strength", type=float, default=1.0, help="edit strength alpha (1 = the paper)")
    e.add_argument("--remap-strength", type=float, default=1.0, help="CLIPRemapper strength beta (1 = the paper)")
    e.add_argument("--no-align", action="store_true", help="the image is already an FFHQ-aligned face crop")
    e.add_argument("--face-index", default="0", type=face_index,
                   help="which face to edit, 0 = the largest (default), or 'all'")
    e.add_argument("--paste-back", action="store_true",
                   help="write the whole photo with the edited face pasted in (instead of the face alone)")
    e.add_argument("--feather", type=float, default=0.1,
                   help="paste-back: width of the blend at the crop's edge, as a fraction of its side")
    e.add_argument("--color-match", type=float, default=1.0,
                   help="paste-back: 0..1, how far the edited face takes the photo's colours at its border")
    e.add_argument("--if-no-face", choices=("error", "passthrough"), default="error",
                   help="no face found: stop with an error (default), or edit the whole photo resized")
    add_face_filter(e)
    add_device(e)
    add_quiet(e)
    e.add_argument("--save-raw", metavar="RAW", help="also write float32 text_embedding, w, w_hat, image "
                   "(unclamped) and, with identity tuning, tuning_losses (first L2, first LPIPS, last L2, last "
                   "LPIPS per tuning) to this .safetensors file")
    add_tuning_args(e, "photo")
    e.set_defaults(run=run_edit)

    g = sub.add_parser("align", help="write the FFHQ-aligned crop of a face in a photo")
    add_input(g, "the photo", "--image")
    g.add_argument("-o", "--output", required=True, help="output PNG (with --face-index all: OUT_0.png, ...)")
    g.add_argument("--size", type=int, default=256, help="crop side: 256 for the encoder, 1024 to look at")
    g.add_argument("--face-index", default="0", type=face_index, help="0 = the largest face (default), or 'all'")
    add_face_filter(g)
    add_quiet(g)
    g.set_defaults(run=run_align)


def run_edit(a) -> int:
    from ..align import FaceNotFoundError
    from ..errors import InputError
    from ..images import load_image
    from ..photo import Paste, edit_photos, face_targets, find_faces, pixels
    from ..pipeline import CLIPInverter
    from .identity import tuned_models

    if a.no_align and a.paste_back:
        raise InputError("--paste-back needs the alignment: drop --no-align")
    img = load_image(a.input)
    names = ["loading the model", "finding the faces"] + (["tuning the identity"] if a.refine_identity else [])
    with steps(names + ["editing"], a.quiet) as step:
        model = CLIPInverter.from_bundle(a.model, a.device, a.precision)
        step()
        warn_about_model(model, a)
        try:
            faces = find_faces(img, model.device, a.face_index, a.if_no_face, aligned=a.no_align, keep=face_filter(a))
        except FaceNotFoundError as e:
            raise InputError(f"{e}; pass --no-align for a face crop that is already FFHQ-aligned, or "
                             "--if-no-face passthrough to edit the whole photo") from None
        step()
        models, tunings = tuned_models(model, faces.x, lambda: face_targets(faces, model.size), a)
        if a.refine_identity:
            step()
        paste = Paste(a.feather, a.color_match) if a.paste_back else None
        result, pictures = edit_photos(model, faces, model.encode_text(a.text), a.strength, a.remap_strength, paste,
                                       models)
        frames = pixels(pictures)  # the PNGs' one host copy
    if a.save_raw:
        _save_raw(a.save_raw, result, tunings)
        a.written.append(a.save_raw)
    _write_pngs(a, frames)
    return 0


def _save_raw(path: str, result, tunings=()) -> None:
    import torch
    from safetensors.torch import save_file

    from .. import devices
    from ..fileio import atomic_output

    raw = {"text_embedding": result.text_embedding, "w": result.w, "w_hat": result.w_hat, "image": result.image}
    if tunings:
        raw["tuning_losses"] = torch.tensor([[t.first["l2"], t.first["lpips"], t.last["l2"], t.last["lpips"]]
                                             for t in tunings], dtype=torch.float32)
    with atomic_output(path) as tmp:
        save_file({k: v.contiguous() for k, v in devices.to_host(raw).items()}, tmp)


def _write_pngs(a, frames, captions=None) -> None:
    import numpy as np

    from ..images import save_png

    for k, (path, arr) in enumerate(zip(numbered(a.output, len(frames)), frames)):
        save_png(path, np.ascontiguousarray(arr))
        a.written.append(path)
        print(f"wrote {path}" + (f" ({captions[k]})" if captions else ""))


def run_align(a) -> int:
    from ..align import align
    from ..images import load_image
    from ..photo import pixels

    with steps(["finding the faces"], a.quiet):
        crops, alignment = align(load_image(a.input), a.size, a.face_index, keep=face_filter(a))
    _write_pngs(a, pixels(crops), [f"face {face.face_index}" for face in alignment.faces])
    return 0
