"""Step 4, paste-back: edited crops warped back into their photos over a feathered mask."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import InputError
from .crops import _resize, to_unit_tensor
from .geometry import Alignment, crop_corners
from .resample import device_const


def face_mask(size: int, feather: float = 0.1, device=None, dtype=torch.float32) -> torch.Tensor:
    """(size, size) blend weights of an aligned crop: 0 on the crop's outer pixels, rising smoothly to 1
    over `feather` x size pixels inwards (feather 0: all ones)."""
    centre = np.arange(size, dtype=np.float64)
    d = np.minimum(centre, size - 1 - centre)  # pixels from the outermost row/column
    if feather <= 0:
        ramp = np.ones_like(d)
    else:
        ramp = np.clip(d / (feather * size), 0, 1)
        ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep: no visible edge where the ramp ends
    return device_const(np.minimum(ramp[:, None], ramp[None, :]), device, dtype)


def paste_back(original, edited: torch.Tensor, alignment: Alignment, feather: float = 0.1) -> torch.Tensor:
    """Edited crops (N, 3, s, s) in [0, 1] warped back into their photos (B, 3, H, W) and blended with
    `face_mask`: pixels outside every mask are the original's, bit for bit. Any crop side s works (an
    edited 1024 image of a 256 alignment). A pass-through crop replaces its whole photo, resized."""
    from kornia.geometry.transform import warp_perspective

    out = to_unit_tensor(original).clone()
    if out.shape[0] != alignment.batch_size:
        raise InputError(f"the alignment is of {alignment.batch_size} photo(s), the original has {out.shape[0]}")
    if edited.ndim != 4 or edited.shape[0] != len(alignment) or edited.shape[2] != edited.shape[3]:
        raise InputError(f"expected {len(alignment)} square edited crop(s) (N, 3, s, s), got {tuple(edited.shape)}")
    edited = edited.to(out.device, torch.float32).clamp(0, 1)
    for crop, entry in zip(edited, alignment.faces):
        h, w = entry.source_size
        if out.shape[2:] != (h, w):
            raise InputError(f"the alignment is of a {w}x{h} photo, the original is {out.shape[3]}x{out.shape[2]}")
        b = entry.batch_index
        if entry.passthrough:
            out[b] = _resize(crop[None], (h, w))[0].clamp(0, 1).to(out.dtype)
            continue
        s = crop.shape[-1]
        side = float(np.hypot(*np.diff(crop_corners(entry.matrix_for(s), s)[[0, 3]], axis=0)[0]))
        if s > 2 * side:  # a crop much finer than the face in the photo: antialias down to 2x the face first,
            s = max(int(math.ceil(2 * side)), 1)  # which the bilinear warp then halves without aliasing
            crop = _resize(crop[None], (s, s))[0].clamp(0, 1)
        mask = face_mask(s, feather, out.device)
        matrix = entry.matrix_for(s)
        corners = crop_corners(matrix, s)
        x0, y0 = max(int(math.floor(corners[:, 0].min())), 0), max(int(math.floor(corners[:, 1].min())), 0)
        x1, y1 = min(int(math.ceil(corners[:, 0].max())) + 1, w), min(int(math.ceil(corners[:, 1].max())) + 1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        to_box = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]]) @ matrix
        src = torch.cat([crop * mask, mask[None]])[None]  # premultiplied: zero weight outside the crop
        warped = warp_perspective(src, device_const(to_box, out.device, torch.float32)[None],
                                  (y1 - y0, x1 - x0), mode="bilinear", padding_mode="zeros", align_corners=True)[0]
        m = warped[3:].clamp(0, 1)
        box = out[b, :, y0:y1, x0:x1]
        blended = box * (1 - m) + warped[:3].to(box.dtype)
        out[b, :, y0:y1, x0:x1] = torch.where(m > 0, blended.clamp(0, 1), box)
    return out


def paste_edits(original, edited: torch.Tensor, alignment: Alignment, feather: float = 0.1,
                progress=None) -> torch.Tensor:
    """Edited crops pasted into their photos, broadcast as the CLI does: one crop per aligned face gives the
    photo batch once; one aligned face edited N ways gives N photos (each with one edit). Other counts are an
    InputError. progress: called as progress(k, total) after each of the `total` pastes (a progress bar)."""
    n_faces, n_edits = len(alignment), edited.shape[0]
    if n_edits == n_faces:
        groups = [slice(0, n_edits)]
    elif n_faces == 1:
        groups = [slice(k, k + 1) for k in range(n_edits)]
    else:
        raise InputError(f"{n_edits} edited images do not fit an alignment of {n_faces} faces: give one edit "
                         "per face, or align one face and edit it several ways")
    out = []
    for k, g in enumerate(groups):
        out.append(paste_back(original, edited[g], alignment, feather))
        if progress is not None:
            progress(k, len(groups))
    return torch.cat(out)
