"""`python -m clipinverter_core evaluate`: edit a folder of faces with each prompt at each strength and measure it.

    python -m clipinverter_core evaluate --model BUNDLE --images DIR --text "..." [--text ...]
        [--strength 0.5,1,1.5] -o REPORT_DIR [--no-align] [--arcface FILE] [--alexnet FILE] [--inception FILE]
        [--source-text "a photo of a face"]

writes REPORT_DIR/metrics.csv and metrics.json (one row per image x prompt x strength, then the means; with
--refine-identity or --tuning each score again as `<score>_tuned`, the edit decoded by the tuned generator, and
the tuning's reconstruction L2 and LPIPS before and after),
sheet.png (inputs by prompts by strengths, captioned) and strength.png (CLIP score and identity against
strength, one line per prompt). Nothing is written until every edit is scored; each file is written atomically.
"""
from __future__ import annotations

import argparse
import os
import sys

from .clips import add_track_options
from .common import add_device, add_input, add_quiet, face_filter, warn_about_model
from .identity import add_tuning_args

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
    from ..metrics import SOURCE_TEXT

    p = sub.add_parser("evaluate", help="measure edits of a folder of faces: CLIP score, direction, identity, "
                                        "LPIPS, FID/KID; a contact sheet and a strength plot")
    p.add_argument("--model", help="bundle (.safetensors); not with --edited")
    add_input(p, "a folder of face photos (or FFHQ-aligned crops with --no-align); with --edited, the source video",
              "--images")
    p.add_argument("--edited", help="an edited video (edit-video, Edit Video) to score against --input, its "
                                    "source: TL-ID, TG-ID and the track's wobble (temporal.csv/json/png)")
    p.add_argument("--text", action="append", help="a target description; repeat for several (not with --edited)")
    p.add_argument("--strength", type=_strengths, default=[1.0], help="edit strengths, comma-separated (default 1)")
    p.add_argument("-o", "--output", required=True, help="report folder")
    p.add_argument("--no-align", action="store_true", help="the images are FFHQ-aligned crops already")
    p.add_argument("--remap-strength", type=float, default=1.0, help="CLIPRemapper strength beta (1 = the paper)")
    p.add_argument("--source-text", default=SOURCE_TEXT,
                   help=f"neutral description of the inputs, for the directional score (default {SOURCE_TEXT!r})")
    p.add_argument("--arcface", help="model_ir_se50.pth (identity); default: looked for in models/clipinverter")
    p.add_argument("--lpips-alexnet", "--alexnet", dest="alexnet",
                   help="alexnet-owt-7be5be79.pth (LPIPS); default: looked for in models/clipinverter")
    p.add_argument("--inception", help="Inception-v3 FID weights (FID, KID); default: looked for in "
                                       "models/clipinverter")
    add_track_options(p)  # --edited: how the source's face is tracked (as edit-video tracked it)
    add_device(p, precision=False)
    add_quiet(p)
    add_tuning_args(p, "photo", alexnet=False)  # --refine-identity: each edit scored with and without tuning
    p.set_defaults(run=run)


def list_images(folder: str) -> list[str]:
    from ..errors import InputError

    if not os.path.isdir(folder):
        raise InputError(f"no folder at {folder}")
    paths = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise InputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return paths


def run(a) -> int:
    from ..errors import InputError

    if a.edited:
        return run_clip(a)
    if not a.model or not a.text:
        raise InputError("evaluate needs --model and --text (or --edited EDITED_VIDEO, to score a clip against "
                         "--input, its source)")
    from ..metrics.report import measure, write_report
    from ..photo import faces_of_photos
    from ..pipeline import CLIPInverter
    from .identity import tuned_models

    paths = list_images(a.input)
    model = CLIPInverter.from_bundle(a.model, a.device)
    standin = warn_about_model(model, a, "the edits will not look like faces")
    kept, x, targets = faces_of_photos(paths, model.device, a.no_align, warn=lambda m: print(m, file=sys.stderr),
                                       target_size=model.size if a.refine_identity else None, keep=face_filter(a))
    names = [os.path.basename(p) for p in kept]
    tuned, tunings = tuned_models(model, x, lambda: targets, a)
    result = measure(model, names, x, a.text, a.strength, a.remap_strength, a.source_text, arcface=a.arcface,
                     alexnet=a.alexnet, inception=a.inception, progress=not a.quiet, tuned=tuned,
                     tunings=tunings if a.refine_identity else None)
    result.meta.update(model=os.path.basename(a.model), standin=standin, images=a.input,
                       aligned_here=not a.no_align)
    for path in write_report(result, a.output):
        print(f"wrote {path}")
    for score, why in result.skipped.items():
        print(f"{score}: skipped: {why}", file=sys.stderr)
    return 0


def run_clip(a) -> int:
    """evaluate --edited: the edited clip against its source (metrics/clips.py)."""
    from ..errors import CheckpointError
    from ..lossnets import find_loss_file, load_arcface
    from ..metrics.clips import check_edit_of, measure_clip, write_clip_report
    from .clips import progress_bar, track_clip

    info = check_edit_of(a.input, a.edited)  # before the tracking pass
    skipped, net = {}, None
    try:
        net = load_arcface(find_loss_file("arcface", a.arcface), a.device)
    except CheckpointError as e:
        if a.arcface:
            raise
        skipped["tl_id, tg_id"] = str(e)
    plan = track_clip(a, info, "passthrough")
    with progress_bar(info[0], "score", a.quiet) as bar:
        measured = measure_clip(a.input, a.edited, net, plan, progress=lambda k: bar.update(1))
    meta = {"source": a.input, "edited": a.edited, "smoothing": a.smoothing, "face_index": a.face_index}
    for path in write_clip_report(measured, a.output, meta, skipped):
        print(f"wrote {path}")
    for k, m in measured.items():
        s = m.summary
        print(f"face {k}: {s['frames']} frames; TL-ID {s.get('tl_id', float('nan')):.4f}, "
              f"TG-ID {s.get('tg_id', float('nan')):.4f}, wobble {100 * s['wobble']:.3f}% of the crop's width")
    for score, why in skipped.items():
        print(f"{score}: skipped: {why}", file=sys.stderr)
    return 0
