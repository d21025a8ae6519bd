"""Alignment of a clip: detection per frame, tracking and smoothing (track.py), then the crops.

The work is split so that a caller can stream: `scan_frames` needs one frame at a time and keeps only the
detections and colour signatures (a few hundred bytes a frame); `plan_clip` turns them into each frame's quads;
`crop_frame` cuts one frame's crops. `align_clip` runs the three over a tensor of frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch

from ..heap import streamed
from .crops import passthrough_crop, to_unit_tensor
from .detect import Face, FaceFilter, FaceNotFoundError, detect_faces, order_faces
from .geometry import Alignment, FaceAlignment, crop_corners
from .track import DETECTED, HELD, INTERPOLATED, check_options, find_cuts, follow, frame_signature, smoothed_quads
from .warp import align_quad


@dataclass(frozen=True)
class PlannedCrop:
    """One crop of one frame: a tracked face's quad, or (quad None) the whole frame passed through. status: the
    track's in this frame: 'detected', 'interpolated' (a gap the track closed) or 'held' (the last quad kept)."""
    track: int | None
    quad: np.ndarray | None
    landmarks: np.ndarray | None = None
    status: str = DETECTED

    @property
    def held(self) -> bool:
        return self.status == HELD

    @property
    def detected(self) -> bool:
        return self.status == DETECTED


def scan_frames(frames: Iterable[torch.Tensor], check: Callable[[], None] | None = None,
                progress: Callable[[int], None] | None = None, keep: FaceFilter = FaceFilter()
                ) -> tuple[list[list[Face]], np.ndarray]:
    """Detections (those `keep` accepts) and cuts of frames given one at a time ((3, H, W) in [0, 1])."""
    detections, signatures = [], []
    for t, frame in enumerate(streamed(frames)):  # heap.py: freed frames go back to the system
        if check is not None:
            check()
        detections.append(detect_faces(frame, keep))
        signatures.append(frame_signature(frame))
        if progress is not None:
            progress(t + 1)
    return detections, find_cuts(signatures)


def plan_clip(detections: list[list[Face]], cuts: np.ndarray, face_index: int | str = 0,
              on_missing: str = "error", face_order: str = "largest first", smoothing: float | str = "auto",
              hold: int = 5) -> list[list[PlannedCrop]]:
    """Each frame's crops: one per tracked face present (detected, interpolated or held); smoothing: 'auto' or
    a sigma in frames (track.py, smooth.py). A frame with none gets a
    pass-through (on_missing 'passthrough') or stops with FaceNotFoundError naming it ('error')."""
    check_options(face_index, smoothing, hold)
    order_faces([], face_order)
    tracks = follow(detections, cuts, face_index, face_order, hold)
    quads = [smoothed_quads(tr, smoothing) for tr in tracks]
    plan = []
    for t in range(len(detections)):
        crops = [PlannedCrop(k, quads[k][t], tr.landmarks[t], tr.status[t])
                 for k, tr in enumerate(tracks) if tr.status[t] in (DETECTED, INTERPOLATED, HELD)]
        if not crops:
            if on_missing != "passthrough":
                raise FaceNotFoundError(f"no face found in frame {t} of the clip (for more than the {hold} frames "
                                        "a track is held); set if_no_face to passthrough to keep such frames whole")
            crops = [PlannedCrop(None, None)]
        plan.append(crops)
    return plan


def crop_frame(frame: torch.Tensor, t: int, planned: list[PlannedCrop], size: int
               ) -> tuple[list[torch.Tensor], list[FaceAlignment]]:
    """The crops of frame t ((3, H, W), any device) as planned, and where each sits."""
    crops, entries = [], []
    for p in planned:
        if p.quad is None:
            crop, entry = passthrough_crop(t, frame, size)
        else:
            crop, matrix = align_quad(frame, p.quad, size)
            entry = FaceAlignment(t, p.track, size, tuple(frame.shape[1:]), matrix,
                                  quad=crop_corners(matrix, size), landmarks=p.landmarks, status=p.status)
        crops.append(crop)
        entries.append(entry)
    return crops, entries


def align_clip(frames, size: int = 256, face_index: int | str = 0, on_missing: str = "error",
               face_order: str = "largest first", smoothing: float | str = "auto", hold: int = 5,
               detections: list[list[Face]] | None = None, cuts: np.ndarray | None = None,
               check: Callable[[], None] | None = None, progress: Callable[[int], None] | None = None,
               keep: FaceFilter = FaceFilter()) -> tuple[torch.Tensor, Alignment]:
    """Tracked, smoothed crops of a clip (B, 3, H, W): like `align` with one face followed (or, 'all', each
    face of the first frame), not detected anew in each frame. progress(k) after each of the 2B steps (B
    detections, B crops); check() before each (cancel)."""
    images = to_unit_tensor(frames)
    if detections is None or cuts is None:
        detections, cuts = scan_frames(images, check, progress, keep)
    plan = plan_clip(detections, cuts, face_index, on_missing, face_order, smoothing, hold)
    crops, entries = None, []  # the crops go straight into one tensor: a long clip's are never held twice
    total = sum(len(planned) for planned in plan)
    for t, planned in enumerate(plan):
        if check is not None:
            check()
        c, e = crop_frame(images[t], t, planned, size)
        if crops is None:
            crops = torch.empty((total, *c[0].shape), dtype=c[0].dtype, device=c[0].device)
        crops[len(entries):len(entries) + len(c)] = torch.stack(c)
        entries += e
        if progress is not None:
            progress(len(plan) + t + 1)
    return crops, Alignment(entries, len(images))
