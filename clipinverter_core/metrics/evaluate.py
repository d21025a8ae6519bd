"""`python -m clipinverter_core evaluate`: edit a folder of faces with each prompt at each strength and measure it.

    python -m clipinverter_core evaluate --model BUNDLE --images DIR --text "..." [--text ...]
        [--strength 0.5,1,1.5] -o REPORT_DIR [--no-align] [--arcface FILE] [--alexnet FILE] [--inception FILE]
        [--source-text "a photo of a face"]

writes REPORT_DIR/metrics.csv and metrics.json (one row per image x prompt x strength, then the means),
sheet.png (inputs by prompts by strengths, captioned) and strength.png (CLIP score and identity against
strength, one line per prompt). Nothing is written until every edit is scored; each file is written atomically.
"""
from __future__ import annotations

import argparse
import os
import sys

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
FILES = ("metrics.csv", "metrics.json", "sheet.png", "strength.png")


def _strengths(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, e.g. 0.5,1,1.5, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one strength")
    return list(dict.fromkeys(values))


def add_parser(sub) -> None:
    from . import SOURCE_TEXT

    p = sub.add_parser("evaluate", help="measure edits of a folder of faces: CLIP score, direction, identity, "
                                        "LPIPS, FID/KID; a contact sheet and a strength plot")
    p.add_argument("--model", required=True, help="bundle (.safetensors)")
    p.add_argument("--images", required=True, help="folder of face photos (or FFHQ-aligned crops with --no-align)")
    p.add_argument("--text", required=True, action="append", help="a target description; repeat for several")
    p.add_argument("--strength", type=_strengths, default=[1.0], help="edit strengths, comma-separated (default 1)")
    p.add_argument("-o", "--output", required=True, help="report folder")
    p.add_argument("--no-align", action="store_true", help="the images are FFHQ-aligned crops already")
    p.add_argument("--remap-strength", type=float, default=1.0, help="CLIPRemapper strength beta (1 = the paper)")
    p.add_argument("--source-text", default=SOURCE_TEXT,
                   help=f"neutral description of the inputs, for the directional score (default {SOURCE_TEXT!r})")
    p.add_argument("--arcface", help="model_ir_se50.pth (identity); default: looked for in models/clipinverter")
    p.add_argument("--alexnet", help="alexnet-owt-7be5be79.pth (LPIPS); default: looked for in models/clipinverter")
    p.add_argument("--inception", help="Inception-v3 FID weights (FID, KID); default: looked for in "
                                       "models/clipinverter")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def list_images(folder: str) -> list[str]:
    from ..errors import InputError

    if not os.path.isdir(folder):
        raise InputError(f"no folder at {folder}")
    paths = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise InputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return paths


def load_faces(paths: list[str], no_align: bool, device, warn=print):
    """(names, (N, 3, 256, 256) in [-1, 1]): each photo's largest face aligned (or the crop as it is); photos
    without a face are left out with a warning."""
    import torch

    from ..errors import InputError
    from ..images import ENCODER_SIZE, load_image, pil_to_encoder_input

    names, faces = [], []
    for path in paths:
        img = load_image(path)
        if no_align:
            faces.append(pil_to_encoder_input(img).to(device))
        else:
            from ..align import FaceNotFoundError, align, to_unit_tensor
            try:
                crops, _ = align(to_unit_tensor(img, device), ENCODER_SIZE, 0)
            except FaceNotFoundError:
                warn(f"warning: no face found in {path}; left out (pass --no-align for crops already aligned)")
                continue
            faces.append(crops.sub(0.5).div(0.5))
        names.append(os.path.basename(path))
    if not faces:
        raise InputError("no face found in any image; pass --no-align for crops that are already FFHQ-aligned")
    return names, torch.cat(faces)


def run(a) -> int:
    from ..pipeline import CLIPInverter
    from ..sources import official_files_help
    from .report import measure, write_report

    paths = list_images(a.images)
    model = CLIPInverter.from_bundle(a.model, a.device)
    standin = bool(model.metadata.get("standin"))
    if standin:
        print("WARNING: stand-in RANDOM weights: the edits will not look like faces.\n" + official_files_help(),
              file=sys.stderr)
    names, x = load_faces(paths, a.no_align, model.device,
                          warn=lambda m: print(m, file=sys.stderr))
    result = measure(model, names, x, a.text, a.strength, a.remap_strength, a.source_text, arcface=a.arcface,
                     alexnet=a.alexnet, inception=a.inception, progress=not a.quiet)
    result.meta.update(model=os.path.basename(a.model), standin=standin, images=a.images,
                       aligned_here=not a.no_align)
    for path in write_report(result, a.output):
        print(f"wrote {path}")
    for score, why in result.skipped.items():
        print(f"{score}: skipped: {why}", file=sys.stderr)
    return 0
