"""Planning a clip's crops from the command line: shared by `edit-video` and `track`.

    videofile.probe (frame count, rate, size) -> pass 1: videofile.frame_stream -> scan_frames -> plan_clip
"""
from __future__ import annotations

import argparse
import sys

from .common import add_face_filter, face_filter, face_index


def add_track_options(p) -> None:
    """Which face is followed and how its crop is smoothed over time."""
    p.add_argument("--face-index", type=face_index, default=0,
                   help="which face, in --face-order (0 = the first), or 'all'")
    p.add_argument("--face-order", default="largest first", choices=("largest first", "left to right",
                                                                      "top to bottom"))
    p.add_argument("--smoothing", type=smoothing, default="auto",
                   help="the crop's smoothing over time: auto (adapts to the motion, frame by frame) or a fixed "
                        "sigma in frames (0 = per-frame detections)")
    p.add_argument("--hold", type=int, default=5, help="frames a lost face keeps its last crop")
    add_face_filter(p)


def smoothing(text: str):
    """--smoothing: 'auto' or a sigma of 0 frames or more."""
    if text == "auto":
        return text
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"expected auto or a sigma of 0 frames or more, got {text!r}")
    return v


def progress_bar(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total or None, desc=desc, unit="frame", disable=quiet, file=sys.stderr)


def track_clip(a, info: tuple, on_missing: str, track_out: str | None = None, crop_size: int = 1024) -> list:
    """Pass 1 over a.input, whose videofile.probe is `info`: each frame's planned crops (align/video.plan_clip),
    the track written as JSON to track_out when given (align/trackfile.py)."""
    from ..align.trackfile import track_record, write_track
    from ..align.video import plan_clip, scan_frames
    from ..videofile import frame_stream

    total, rate, width, height = info
    with progress_bar(total, "scan", a.quiet) as bar:
        detections, cuts = scan_frames(frame_stream(a.input), progress=lambda k: bar.update(1), keep=face_filter(a))
    plan = plan_clip(detections, cuts, a.face_index, on_missing, a.face_order, a.smoothing, a.hold)
    if track_out:
        write_track(track_out, track_record(plan, float(rate), (width, height), crop_size, a.smoothing))
    return plan
