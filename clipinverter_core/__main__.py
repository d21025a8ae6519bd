"""Command line: `python -m clipinverter_core {convert,info,edit,edit-video,align,download,standin,bench,evaluate,train,export} ...`."""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from .errors import CLIPInverterError
from .sources import official_files_help

# Subcommands in modules of their own: each has add_parser(sub), which registers itself with set_defaults(run=...).
# One line each.
COMMAND_MODULES = [
    ".video_cli",
    ".metrics.evaluate",
    ".training.cli",
]


def _face_index(text: str):
    if text == "all":
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"expected 0, 1, ... or 'all', got {text!r}")


def _numbered(path: str, n: int) -> list[str]:
    return [path] if n == 1 else [f"{os.path.splitext(path)[0]}_{k}.png" for k in range(n)]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m clipinverter_core",
                                 description="CLIPInverter: text-driven editing of face photos.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("convert", help="official checkpoints -> one safetensors bundle",
                       epilog=official_files_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--clipinverter", required=True, help="pretrained_faces.pt (adapter + generator + remapper)")
    c.add_argument("--e4e", required=True, help="e4e_ffhq_encode.pt (encoder + latent_avg)")
    c.add_argument("--clip", required=True, help="ViT-B-32.pt (OpenAI), or open_clip .safetensors / .bin")
    c.add_argument("-o", "--output", required=True, help="the bundle to write (.safetensors)")

    i = sub.add_parser("info", help="what a bundle holds")
    i.add_argument("bundle")
    i.add_argument("--json", action="store_true", help="print the metadata as JSON")

    e = sub.add_parser("edit", help="edit a face photo with a text")
    e.add_argument("--model", required=True, help="bundle (.safetensors)")
    e.add_argument("--image", required=True, help="input photo")
    e.add_argument("--text", required=True, action="append",
                   help="the target description; repeat for several edits of the same photo")
    e.add_argument("-o", "--output", required=True,
                   help="output PNG (with several --text: OUT_0.png, OUT_1.png, ...)")
    e.add_argument("--strength", type=float, default=1.0, help="edit strength alpha (1 = the paper)")
    e.add_argument("--remap-strength", type=float, default=1.0, help="CLIPRemapper strength beta (1 = the paper)")
    e.add_argument("--no-align", action="store_true", help="the image is already an FFHQ-aligned face crop")
    e.add_argument("--face-index", default="0", type=_face_index,
                   help="which face to edit, 0 = the largest (default), or 'all'")
    e.add_argument("--paste-back", action="store_true",
                   help="write the whole photo with the edited face pasted in (instead of the face alone)")
    e.add_argument("--feather", type=float, default=0.1,
                   help="paste-back: width of the blend at the crop's edge, as a fraction of its side")
    e.add_argument("--color-match", type=float, default=1.0,
                   help="paste-back: 0..1, how far the edited face takes the photo's colours at its border (1)")
    e.add_argument("--if-no-face", choices=("error", "passthrough"), default="error",
                   help="no face found: stop with an error (default), or edit the whole photo resized")
    e.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    e.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"))
    e.add_argument("--save-raw", metavar="RAW", help="also write float32 text_embedding, w, w_hat, image "
                   "(unclamped) to this .safetensors file")

    d = sub.add_parser("download", help="opt-in: fetch the official weights and convert them into a bundle")
    d.add_argument("--to", required=True, help="folder for the files (e.g. ComfyUI/models/clipinverter)")
    d.add_argument("--no-convert", action="store_true", help="only fetch the three official files")
    d.add_argument("--clip-from", choices=("openai", "huggingface"), default="openai")
    d.add_argument("--base-url", help="fetch every file as URL/<file name> from a mirror of your own")
    d.add_argument("--quiet", action="store_true", help="no progress bars")

    g = sub.add_parser("align", help="write the FFHQ-aligned crop of a face in a photo")
    g.add_argument("--image", required=True, help="input photo")
    g.add_argument("-o", "--output", required=True, help="output PNG (with --face-index all: OUT_0.png, ...)")
    g.add_argument("--size", type=int, default=256, help="crop side: 256 for the encoder, 1024 to look at")
    g.add_argument("--face-index", default="0", type=_face_index, help="0 = the largest face (default), or 'all'")

    s = sub.add_parser("standin", help="write a bundle of stand-in RANDOM weights (demos, tests)")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--size", type=int, default=256, help="StyleGAN output size")
    s.add_argument("--seed", type=int, default=0)

    b = sub.add_parser("bench", help="time the fast edit against the reference edit (same weights, same process)")
    b.add_argument("--model", default=None, help="bundle (.safetensors); default: stand-in random weights")
    b.add_argument("--size", type=int, default=1024, help="StyleGAN size of the stand-in weights")
    b.add_argument("--batch", default="1", help="comma-separated batch sizes, e.g. 1,8,32")
    b.add_argument("--precision", default="fp32", help="precisions of the fast path, comma-separated: fp32,bf16,fp16")
    b.add_argument("--device", default="cpu", help="cpu or cuda")
    b.add_argument("--repeats", type=int, default=3, help="timed rounds after one warm-up round")
    b.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    b.add_argument("--compile", default=None, choices=("default", "reduce-overhead", "max-autotune"),
                   help="torch.compile the fast path's heavy stages (compiled.py); the warm-up round compiles")
    for name in COMMAND_MODULES:
        importlib.import_module(name, __package__).add_parser(sub)
    return ap


def cmd_convert(a) -> int:
    from .convert import convert

    convert(a.clipinverter, a.e4e, a.clip, a.output)
    print(f"wrote {a.output} ({os.path.getsize(a.output) / 2**20:.0f} MiB)")
    return 0


def cmd_info(a) -> int:
    from .weights import read_metadata

    meta = read_metadata(a.bundle)
    if a.json:
        print(json.dumps(meta, indent=2))
        return 0
    print(f"bundle:        {a.bundle} ({os.path.getsize(a.bundle) / 2**20:.0f} MiB)")
    print(f"format:        {meta['format']} v{meta['format_version']}")
    print(f"StyleGAN size: {meta['stylegan_size']} ({meta['n_latent']} W+ rows)")
    print(f"components:    {', '.join(json.loads(meta['components']))}")
    print(f"adapter:       {', '.join(json.loads(meta.get('adapter_levels', '[]')))}")
    for src in json.loads(meta.get("sources", "[]")):
        print(f"source:        {src['role']}: {src['file']} sha256 {src['sha256'] or '-'}")
    if meta.get("standin"):
        print("WARNING:       stand-in RANDOM weights: edits will not look like faces")
    print(f"created by:    {meta.get('created_by', '?')}")
    return 0


def cmd_edit(a) -> int:
    import numpy as np

    from . import devices
    from .images import generator_to_unit, load_image, pil_to_encoder_input, save_png, unit_to_uint8
    from .pipeline import CLIPInverter

    img = load_image(a.image)
    model = CLIPInverter.from_bundle(a.model, a.device, a.precision)
    if model.metadata.get("standin"):
        print("WARNING: stand-in RANDOM weights: the output will not look like a face.\n" + official_files_help(),
              file=sys.stderr)
    if a.no_align:
        if a.paste_back:
            from .errors import InputError
            raise InputError("--paste-back needs the alignment: drop --no-align")
        x, alignment, photo = pil_to_encoder_input(img), None, None
    else:
        from .align import FaceNotFoundError, align, to_unit_tensor
        from .errors import InputError
        from .images import ENCODER_SIZE

        photo = to_unit_tensor(img, model.device)
        try:
            crops, alignment = align(photo, ENCODER_SIZE, a.face_index, a.if_no_face)
        except FaceNotFoundError as e:
            raise InputError(f"{e}; pass --no-align for a face crop that is already FFHQ-aligned, or "
                             "--if-no-face passthrough to edit the whole photo") from None
        x = crops.sub(0.5).div(0.5)
    t = model.encode_text(a.text)
    result = model.edit(x, t, strength=a.strength, remap_strength=a.remap_strength)
    images = generator_to_unit(result.image.float())
    if a.paste_back:
        from .align import paste_edits
        images, _ = paste_edits(photo, images, alignment, a.feather, color_match=a.color_match)
    pixels = unit_to_uint8(devices.to_host(images.permute(0, 2, 3, 1)).numpy())  # the PNGs' one host copy
    outputs = _numbered(a.output, len(pixels))
    if a.save_raw:
        from safetensors.torch import save_file

        from .fileio import atomic_output
        raw = {"text_embedding": result.text_embedding, "w": result.w, "w_hat": result.w_hat, "image": result.image}
        with atomic_output(a.save_raw) as tmp:
            save_file({k: v.contiguous() for k, v in devices.to_host(raw).items()}, tmp)
        a.written.append(a.save_raw)
    for path, arr in zip(outputs, pixels):
        save_png(path, np.ascontiguousarray(arr))
        a.written.append(path)
        print(f"wrote {path}")
    return 0


def cmd_download(a) -> int:
    from .download import download

    paths = download(a.to, base_url=a.base_url, convert=not a.no_convert, clip_from=a.clip_from,
                     progress=not a.quiet)
    print(f"done: {paths.get('bundle', a.to)}")
    return 0


def cmd_align(a) -> int:
    import numpy as np

    from .align import align
    from .images import load_image, save_png, unit_to_uint8

    crops, alignment = align(load_image(a.image), a.size, a.face_index)
    pixels = unit_to_uint8(crops.permute(0, 2, 3, 1).cpu().numpy())
    for path, arr, face in zip(_numbered(a.output, len(pixels)), pixels, alignment.faces):
        save_png(path, np.ascontiguousarray(arr))
        a.written.append(path)
        print(f"wrote {path} (face {face.face_index})")
    return 0


def cmd_standin(a) -> int:
    from .standin import make_standin_bundle

    make_standin_bundle(a.output, a.size, a.seed)
    print(f"wrote {a.output}: stand-in RANDOM weights (size {a.size}, seed {a.seed})")
    return 0


def cmd_bench(a) -> int:
    from .bench import cmd_bench as bench

    return bench(a)


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a user can cause: the project's errors, files (OSError: missing, a folder, no permission, a full
    disk), pictures PIL refuses (its DecompressionBombError is no OSError), safetensors files it cannot parse."""
    from PIL import Image
    from safetensors import SafetensorError

    return CLIPInverterError, OSError, Image.DecompressionBombError, SafetensorError


def _one_line(e: BaseException) -> str:
    if isinstance(e, FileNotFoundError) and e.filename:
        return f"no file at {e.filename}"
    return " ".join(str(e).split()) or type(e).__name__


def _interrupted(written: list[str]) -> str:
    if not written:
        return "interrupted; no output was written"
    return f"interrupted after writing {', '.join(written)}; nothing else was written"


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    a.written = []  # each output once it is complete, for the message after an interrupt
    try:
        if getattr(a, "run", None) is not None:
            return a.run(a)
        return {"convert": cmd_convert, "info": cmd_info, "edit": cmd_edit, "align": cmd_align,
                "standin": cmd_standin, "download": cmd_download, "bench": cmd_bench}[a.cmd](a)
    except _user_errors() as e:  # evaluated only when an exception arrives: PIL and safetensors load lazily
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(_interrupted(a.written), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
