"""Step 2b, tracking: one face (or each face) followed through a clip, its FFHQ quad smoothed over time.

    frames -> detect_faces per frame + a colour signature per frame (cuts)
           -> follow: the chosen face of a shot's first frame, then in each frame the detection nearest the
              track's last quad (never "the largest"); a miss holds the track for `hold` frames: a gap that a
              later detection closes is interpolated, a track that never comes back keeps its last quad
           -> smoothed_quads: each run's quad over time through smooth.py (zero-phase; `auto` adapts its width
              frame by frame, a number fixes it)
           -> align_quad per frame

A cut (the shot changes) ends every track: a frame whose picture changed in most places starts a new shot
(find_cuts), where the face is chosen afresh, and no smoothing reaches across it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from .detect import Face, order_faces
from .geometry import ffhq_quad
from .smooth import smooth

GATE = 0.5            # a detection continues a track if its quad centre is within this fraction of the crop side
GRID = 16             # cut detection compares frames as GRID x GRID cells of mean luma
CUT_CHANGE = 0.08     # a median cell change (0..1) above this is a cut; measured on the test clip: motion and a
                      # covered face <= 0.02, the cut 0.21
DETECTED, HELD, INTERPOLATED, MISSING = "detected", "held", "interpolated", "missing"


def frame_signature(frame: torch.Tensor) -> np.ndarray:
    """A frame's signature for cut detection: its luma box-filtered to (GRID, GRID) (a small host copy)."""
    luma = frame[None].float().mean(1, keepdim=True)
    return F.interpolate(luma, size=(GRID, GRID), mode="area")[0, 0].cpu().numpy()


def find_cuts(signatures: list[np.ndarray]) -> np.ndarray:
    """(T,) bool: frame t starts a new shot (frame 0 never does): the median cell of the grid changed by more
    than CUT_CHANGE. A cut changes most of the picture; motion changes it little, and an occluder (a hand, a
    card over the face) changes less than half of it, which the median ignores."""
    cuts = np.zeros(len(signatures), dtype=bool)
    for t in range(1, len(signatures)):
        cuts[t] = np.median(np.abs(signatures[t] - signatures[t - 1])) > CUT_CHANGE
    return cuts


def looks_like_video(cuts: np.ndarray) -> bool:
    """A batch is taken for a video clip when it has 2+ frames and most neighbours are of one shot (a batch of
    separate photos changes shot at nearly every frame)."""
    return len(cuts) >= 2 and cuts[1:].mean() < 0.5


def quad_params(quad: np.ndarray) -> np.ndarray:
    """(4,) = the quad's centre and its half-width vector x (the quad is c -x -y, c -x +y, c +x +y, c +x -y)."""
    c = quad.mean(0)
    return np.concatenate([c, (quad[2] + quad[3]) / 2 - c])


def params_quad(p: np.ndarray) -> np.ndarray:
    c, x = p[:2], p[2:]
    y = np.array([-x[1], x[0]])
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


@dataclass
class Track:
    """One followed face: per frame its status, its quad parameters (NaN where not detected), its landmarks."""
    status: list[str]
    params: np.ndarray                         # (T, 4)
    landmarks: list[np.ndarray | None]
    segment: np.ndarray                        # (T,) int: frames of one run (one acquisition) share a number


def _choose(faces: list[Face], face_index: int | str, order: str) -> list[Face]:
    ordered = order_faces(faces, order)
    if face_index == "all":
        return ordered
    return [ordered[face_index]] if face_index < len(ordered) else []


def follow(detections: list[list[Face]], cuts: np.ndarray, face_index: int | str = 0,
           order: str = "largest first", hold: int = 5) -> list[Track]:
    """Tracks through the frames' detections. face_index: the face of a shot's first frame with faces, counted
    in `order` ('all': each face of that frame gets a track). After that, each track takes the detection nearest
    its last quad, within GATE of its crop side (one detection per track). A track that misses a frame is held
    for up to `hold` frames, then lost; when no track is left, the next frame with faces chooses afresh."""
    n = len(detections)
    tracks: list[Track] = []
    active: list[tuple[int, np.ndarray, int]] = []  # (track number, last params, frames missed)
    acquisitions = 0
    for t in range(n):
        if cuts[t]:
            active = []
        faces = detections[t]
        if not active:
            chosen = _choose(faces, face_index, order)
            acquisitions += bool(chosen)
            for k, face in enumerate(chosen):
                if k == len(tracks):
                    tracks.append(Track([MISSING] * n, np.full((n, 4), np.nan), [None] * n, np.full(n, -1)))
                p = quad_params(ffhq_quad(face.landmarks))
                tracks[k].status[t], tracks[k].params[t], tracks[k].landmarks[t] = DETECTED, p, face.landmarks
                tracks[k].segment[t] = acquisitions
                active.append((k, p, 0))
            continue
        params = [quad_params(ffhq_quad(f.landmarks)) for f in faces]
        pairs = []
        for slot, (_, last, _) in enumerate(active):
            side = 2 * np.hypot(*last[2:])
            for j, p in enumerate(params):
                d = np.hypot(*(p[:2] - last[:2])) / side
                if d <= GATE:
                    pairs.append((d, slot, j))
        match: dict[int, int] = {}
        for _, slot, j in sorted(pairs):
            if slot not in match and j not in match.values():
                match[slot] = j
        still = []
        for slot, (k, last, missed) in enumerate(active):
            tr = tracks[k]
            if slot in match:
                j = match[slot]
                tr.status[t], tr.params[t], tr.landmarks[t] = DETECTED, params[j], faces[j].landmarks
                tr.segment[t] = acquisitions
                still.append((k, params[j], 0))
            elif missed < hold:
                tr.status[t], tr.segment[t] = HELD, acquisitions
                still.append((k, last, missed + 1))
        active = still  # a track missing for more than `hold` frames is lost
    for tr in tracks:
        mark_gaps(tr)
    return tracks


def mark_gaps(track: Track) -> None:
    """A held frame followed, in the same run, by a detection lies in a gap the track closed: INTERPOLATED (the
    smoothed path through it). The held frames after a run's last detection stay HELD."""
    for t in range(len(track.status) - 2, -1, -1):
        after = track.status[t + 1]
        if track.status[t] == HELD and after in (DETECTED, INTERPOLATED) and track.segment[t] == track.segment[t + 1]:
            track.status[t] = INTERPOLATED


def smoothed_quads(track: Track, smoothing: float | str) -> list[np.ndarray | None]:
    """Per frame the track's quad (4, 2): each run smoothed on its own (smooth.py), its gaps interpolated; a held
    frame keeps the run's last quad."""
    n = len(track.status)
    quads: list[np.ndarray | None] = [None] * n
    for seg in np.unique(track.segment[track.segment >= 0]):
        frames = np.flatnonzero(track.segment == seg)
        seen = frames[[track.status[f] == DETECTED for f in frames]]
        fitted = frames[[track.status[f] in (DETECTED, INTERPOLATED) for f in frames]]
        path = smooth(seen.astype(np.float64), track.params[seen], fitted.astype(np.float64), smoothing)
        last = None
        by_frame = dict(zip(fitted.tolist(), path))
        for f in frames:
            last = by_frame.get(int(f), last)
            quads[f] = params_quad(last)
    return quads


def check_options(face_index, smoothing: float | str, hold: int) -> None:
    if face_index != "all" and (not isinstance(face_index, int) or face_index < 0):
        raise InputError(f"face index must be 0, 1, ... or 'all', not {face_index!r}")
    if smoothing != "auto" and (isinstance(smoothing, str) or smoothing < 0):
        raise InputError(f"smoothing must be 'auto' or a sigma of 0 or more frames, not {smoothing!r}")
    if hold < 0:
        raise InputError(f"hold must be 0 or more frames, not {hold!r}")
