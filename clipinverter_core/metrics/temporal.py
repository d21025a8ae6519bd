"""Temporal metrics of an edited clip against its source: does the person stay the same person from frame to
frame, and does the crop hold still?

    source clip -> track (align/video) -> per frame: the face's crop in the source and in the edit (the same quad)
    -> ArcFace features -> TL-ID, TG-ID (STIT: Tzaban et al., "Stitch it in Time", SIGGRAPH Asia 2022, Sec. 5)

- TL-ID, local: the mean identity similarity of adjacent frames' faces in the edit, over the same in the source.
- TG-ID, global: the mean identity similarity over every pair of frames, edit over source.
  1.0 means as consistent as the source; below, the edit flickers in identity the source does not.
- wobble: the track's own jitter, without a ground truth: the RMS of each corner's second difference over time
  (zero for motion at constant speed), as a fraction of the crop's width, per frame and overall.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Temporal:
    """Per-frame series (NaN where a frame has no pair) and the clip's summary."""
    frames: list[int]                      # the frames with the face (tracked), in order
    local_source: np.ndarray               # (len(frames),) similarity of each frame's face to the previous one's
    local_edited: np.ndarray
    wobble: np.ndarray                     # (len(frames),) the track's second difference there / width
    summary: dict = field(default_factory=dict)
    status: list[str] = field(default_factory=list)  # the track's status in each of `frames` (align/track.py)


def normalised(features: torch.Tensor) -> torch.Tensor:
    return F.normalize(features.float(), dim=-1)


def adjacent_similarity(features: torch.Tensor, frames: list[int]) -> np.ndarray:
    """cos(f_t, f_prev) where the previous tracked frame is t - 1, else NaN (the first frame, a gap)."""
    f = normalised(features)
    out = np.full(len(frames), np.nan)
    for i in range(1, len(frames)):
        if frames[i] == frames[i - 1] + 1:
            out[i] = float(f[i] @ f[i - 1])
    return out


def global_similarity(features: torch.Tensor) -> float:
    """The mean of cos(f_i, f_j) over every pair i < j."""
    f = normalised(features)
    n = len(f)
    if n < 2:
        return float("nan")
    gram = f @ f.T
    return float((gram.sum() - gram.diagonal().sum()) / (n * (n - 1)))


def track_wobble(quads: np.ndarray, frames: list[int]) -> np.ndarray:
    """(len(frames),) per frame: the RMS over the quad's corners of |q_{t-1} - 2 q_t + q_{t+1}| / the quad's
    width, where both neighbours are tracked; NaN elsewhere."""
    out = np.full(len(frames), np.nan)
    for i in range(1, len(frames) - 1):
        if frames[i + 1] - frames[i - 1] == 2:
            second = quads[i - 1] - 2 * quads[i] + quads[i + 1]
            width = np.hypot(*(quads[i][3] - quads[i][0]))
            out[i] = np.sqrt((np.linalg.norm(second, axis=-1) ** 2).mean()) / width
    return out


def temporal_metrics(frames: list[int], quads: np.ndarray, source_features: torch.Tensor | None,
                     edited_features: torch.Tensor | None) -> Temporal:
    """The metrics of one tracked face: its frames, its quads (len, 4, 2) and, when an identity network was
    available, ArcFace features of its crops in the source and the edit (len, 512)."""
    wobble = track_wobble(quads, frames)
    nan = np.full(len(frames), np.nan)
    summary = {"frames": len(frames), "wobble": float(np.sqrt(np.nanmean(wobble ** 2))) if np.isfinite(wobble).any()
               else float("nan")}
    if source_features is None or edited_features is None:
        return Temporal(frames, nan, nan.copy(), wobble, summary)
    local_s, local_e = adjacent_similarity(source_features, frames), adjacent_similarity(edited_features, frames)
    global_s, global_e = global_similarity(source_features), global_similarity(edited_features)
    summary.update(tl_id=float(np.nanmean(local_e) / np.nanmean(local_s)) if np.isfinite(local_s).any()
                   else float("nan"),
                   tg_id=global_e / global_s, local_source=float(np.nanmean(local_s)),
                   local_edited=float(np.nanmean(local_e)), global_source=global_s, global_edited=global_e)
    return Temporal(frames, local_s, local_e, wobble, summary)
