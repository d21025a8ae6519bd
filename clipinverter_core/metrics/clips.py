"""The measurement behind `evaluate --edited`: an edited clip scored against its source (temporal.py), and its
report. Both clips are streamed, in step, one frame at a time; only the faces' ArcFace features are kept.

    source --scan, plan (align/video)--> each frame's quad per tracked face
    (source frame, edited frame) --crop both at the quad--> ArcFace features, a chunk at a time --> temporal_metrics
    --> temporal.csv (per frame), temporal.json (summary + per frame), temporal.png (the series over time)
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch

from ..errors import InputError
from ..heap import streamed
from ..images import unit_to_signed
from .temporal import Temporal, temporal_metrics

CROP = 256    # the crops ArcFace sees (pooled to 112 inside, as the identity loss)
CHUNK = 16    # crops per ArcFace batch
COLUMNS = ["status", "local_source", "local_edited", "wobble"]


def check_edit_of(source, edited) -> tuple:
    """The source's videofile.probe; InputError unless the edited clip has its size and (where both files say)
    frame count."""
    from ..videofile import probe

    info, (n_e, _, w_e, h_e) = probe(source), probe(edited)
    n_s, _, w_s, h_s = info
    if (w_s, h_s) != (w_e, h_e) or (n_s and n_e and n_s != n_e):
        raise InputError(f"the edited clip is {w_e}x{h_e} with {n_e} frames, its source {w_s}x{h_s} with {n_s}: "
                         "not an edit of it")
    return info


def measure_clip(source, edited, identity_net: torch.nn.Module | None, plan: list,
                 progress: Callable[[int], None] | None = None) -> dict[int, Temporal]:
    """{track: its Temporal} of the edited clip against the source, along `plan` (align/video.plan_clip of the
    source). identity_net None: the track's wobble only."""
    from ..align.warp import align_quad
    from ..videofile import frame_stream

    check_edit_of(source, edited)
    tracks: dict[int, dict] = {}
    pending: dict[int, list] = {}

    def flush(k: int) -> None:
        crops = pending.pop(k, [])
        if crops and identity_net is not None:
            from .scores import identity_features

            batch = unit_to_signed(torch.stack([c for pair in crops for c in pair]))
            f = identity_features(identity_net, batch).float().cpu()
            tracks[k]["source"].append(f[0::2])
            tracks[k]["edited"].append(f[1::2])

    for t, (a, b) in enumerate(streamed(zip(frame_stream(source), frame_stream(edited)))):
        if t >= len(plan):
            break
        for p in plan[t]:
            if p.quad is None:
                continue
            tr = tracks.setdefault(p.track, {k: [] for k in ("frames", "quads", "status", "source", "edited")})
            tr["frames"].append(t)
            tr["quads"].append(p.quad)
            tr["status"].append(p.status)
            pair = (align_quad(a, p.quad, CROP)[0], align_quad(b, p.quad, CROP)[0])
            pending.setdefault(p.track, []).append(pair)
            if len(pending[p.track]) >= CHUNK // 2:
                flush(p.track)
        if progress is not None:
            progress(t + 1)
    for k in list(pending):
        flush(k)
    out = {}
    for k, tr in sorted(tracks.items()):
        feats = [torch.cat(tr[key]) if tr[key] else None for key in ("source", "edited")]
        m = temporal_metrics(tr["frames"], np.stack(tr["quads"]), *feats)
        m.status = tr["status"]
        out[k] = m
    return out


def temporal_rows(measured: dict[int, Temporal]) -> list[dict]:
    rows = []
    for k, m in measured.items():
        for i, f in enumerate(m.frames):
            rows.append({"track": k, "frame": f, "status": m.status[i],
                         "local_source": m.local_source[i], "local_edited": m.local_edited[i],
                         "wobble": m.wobble[i]})
    return rows


def write_clip_report(measured: dict[int, Temporal], folder: str, meta: dict, skipped: dict[str, str]) -> list[str]:
    """temporal.csv, temporal.json and temporal.png in `folder` (each atomically); returns the paths written."""
    from .table import write_csv, write_json

    os.makedirs(folder, exist_ok=True)
    paths = {name: os.path.join(folder, name) for name in ("temporal.csv", "temporal.json", "temporal.png")}
    rows = temporal_rows(measured)
    write_csv(paths["temporal.csv"], rows, COLUMNS, keys=("track", "frame"))
    summary = {str(k): m.summary for k, m in measured.items()}
    write_json(paths["temporal.json"], {"meta": meta, "skipped": skipped, "tracks": summary, "frames": rows})
    try:
        temporal_plot(paths["temporal.png"], measured, meta.get("title", ""))
    except ImportError:
        skipped["temporal.png"] = "matplotlib is not installed (pip install matplotlib)"
        del paths["temporal.png"]
    return list(paths.values())


def temporal_plot(path: str, measured: dict[int, Temporal], title: str = "") -> None:
    """Two panels over the frames: adjacent-frame identity similarity (source and edit) and the track's wobble."""
    from matplotlib.figure import Figure

    from ..fileio import atomic_output

    fig = Figure(figsize=(9, 5.4), dpi=100, layout="constrained")
    ident, wob = fig.subplots(2, 1, sharex=True)
    for k, m in measured.items():
        label = f" (face {k})" if len(measured) > 1 else ""
        s = m.summary
        if np.isfinite(m.local_source).any():
            ident.plot(m.frames, m.local_source, label=f"source{label}")
            ident.plot(m.frames, m.local_edited, label=f"edit{label}: TL-ID {s['tl_id']:.3f}, TG-ID {s['tg_id']:.3f}")
        wob.plot(m.frames, 100 * m.wobble, label=f"track{label}: RMS {100 * s['wobble']:.3f}%")
    ident.set_ylabel("identity to the previous frame\n(ArcFace cosine)")
    wob.set_ylabel("track wobble\n(% of the crop's width)")
    wob.set_xlabel("frame")
    for ax in (ident, wob):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small", frameon=False)
    if title:
        fig.suptitle(title, fontsize="medium")
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
