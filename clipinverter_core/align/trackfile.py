"""A clip's face track as JSON, for compositing tools and for checking (`track`, `edit-video --track-out`).

    {"fps": 24.0, "size": [w, h], "crop_size": 1024, "smoothing": "auto",
     "frames": [{"faces": [{"track": 0, "quad": [[x, y] x 4], "matrix": [[...] x 3], "status": "detected"}]}]}

One entry per frame, in order; a frame without a tracked face has no faces. quad: the crop's corners in the
frame's pixels (pixel centres at integers), in the order the alignment uses (top-left, bottom-left, bottom-right,
top-right of the crop); matrix: the crop's, aligned pixel (x, y, 1) -> frame pixel, for a crop of crop_size
(FaceAlignment.matrix_for rescales it); status: 'detected', 'interpolated' (a gap the track closed) or 'held'
(the track's last quad kept while the face is lost).
"""
from __future__ import annotations

import json

from ..fileio import atomic_output
from .geometry import crop_corners
from .warp import crop_matrix

FORMAT_VERSION = 1


def track_record(plan: list, fps: float, size: tuple[int, int], crop_size: int = 1024,
                 smoothing: float | str = "auto") -> dict:
    """The JSON-ready track of a clip's plan (align/video.plan_clip) with frames of size (W, H)."""
    w, h = size
    frames = []
    for planned in plan:
        faces = []
        for p in planned:
            if p.quad is None:
                continue
            m = crop_matrix(p.quad, crop_size, (h, w))
            faces.append({"track": p.track, "quad": crop_corners(m, crop_size).round(4).tolist(),
                          "matrix": m.round(6).tolist(), "status": p.status})
        frames.append({"faces": faces})
    return {"format_version": FORMAT_VERSION, "fps": float(fps), "size": [int(w), int(h)], "crop_size": crop_size,
            "smoothing": smoothing, "frames": frames}


def write_track(path: str, record: dict) -> None:
    """The record as JSON, written atomically (a half-written track is never left)."""
    with atomic_output(path) as tmp, open(tmp, "w") as f:
        json.dump(record, f, separators=(",", ":"))
