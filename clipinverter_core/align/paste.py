"""Step 4, paste-back: edited crops colour-matched to their photos (colour.py) and warped back into them over
a feathered mask; the mask itself comes out too (for inpainting or upscaling the pasted region)."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import InputError
from .colour import match_colours
from .crops import _resize, to_unit_tensor
from .geometry import Alignment, crop_corners
from .resample import device_const

# The colour statistics are read in the mask's border band: its feather ramp, and at least this fraction of
# the crop's side inside the mask's edge (a hard edge, feather 0, still has a band to match).
MATCH_BAND = 0.05


def _edge_distance(size: int, grow: float) -> np.ndarray:
    """(size, size): distance of each pixel from the crop's outermost pixels, as a fraction of the side,
    plus `grow` (negative: the mask's edge moves inwards)."""
    centre = np.arange(size, dtype=np.float64)
    d = np.minimum(centre, size - 1 - centre) / size
    return np.minimum(d[:, None], d[None, :]) + grow


def face_mask(size: int, feather: float = 0.1, device=None, dtype=torch.float32, grow: float = 0.0) -> torch.Tensor:
    """(size, size) blend weights of an aligned crop: 0 on the crop's outer pixels, rising smoothly to 1
    over `feather` x size pixels inwards (feather 0: all ones). grow (a fraction of the side) moves that edge:
    -0.1 starts the ramp a tenth of the side inside the crop; a positive grow lifts the crop's own edge above 0."""
    d = _edge_distance(size, grow)
    if feather <= 0:
        ramp = (d >= 0).astype(np.float64)
    else:
        ramp = np.clip(d / feather, 0, 1)
        ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep: no visible edge where the ramp ends
    return device_const(ramp, device, dtype)


def _border_band(size: int, feather: float, grow: float, device) -> torch.Tensor:
    d = _edge_distance(size, grow)
    return device_const((d >= 0) & (d < max(feather, MATCH_BAND)), device, torch.float32)


def _photo_in_crop(photo: torch.Tensor, matrix: np.ndarray, s: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The photo (3, H, W) sampled on the crop's s x s grid, and where that grid lies inside the photo (s, s)."""
    from kornia.geometry.transform import warp_perspective

    src = torch.cat([photo.float(), torch.ones_like(photo[:1], dtype=torch.float32)])[None]
    to_crop = device_const(np.linalg.inv(matrix), photo.device, torch.float32)[None]
    warped = warp_perspective(src, to_crop, (s, s), mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    return warped[:3].clamp(0, 1), (warped[3] > 1 - 1e-3).float()


def paste_back_with_mask(original, edited: torch.Tensor, alignment: Alignment, feather: float = 0.1,
                         color_match: float = 1.0, grow: float = 0.0, progress=None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Edited crops (N, 3, s, s) in [0, 1] warped back into their photos (B, 3, H, W) and blended with
    `face_mask`: pixels outside every mask are the original's, bit for bit. Any crop side s works (an
    edited 1024 image of a 256 alignment). A pass-through crop replaces its whole photo, resized.
    color_match 0..1: how far each crop takes its photo's colours at the mask's border (colour.py).
    Returns the photos and their blend masks (B, H, W) in [0, 1] (the largest weight over a photo's faces).
    progress(k, total) after each face. Each crop is converted on its own: no second copy of a long batch."""
    out = to_unit_tensor(original).clone()
    if out.shape[0] != alignment.batch_size:
        raise InputError(f"the alignment is of {alignment.batch_size} photo(s), the original has {out.shape[0]}")
    if edited.ndim != 4 or edited.shape[0] != len(alignment) or edited.shape[2] != edited.shape[3]:
        raise InputError(f"expected {len(alignment)} square edited crop(s) (N, 3, s, s), got {tuple(edited.shape)}")
    masks = torch.zeros(out.shape[0], *out.shape[2:], device=out.device, dtype=torch.float32)
    for k, (crop, entry) in enumerate(zip(edited, alignment.faces)):
        _paste_face(out, masks, crop.to(out.device, torch.float32).clamp(0, 1), entry, feather, color_match, grow)
        if progress is not None:
            progress(k, len(alignment))
    return out, masks


def _paste_face(out: torch.Tensor, masks: torch.Tensor, crop: torch.Tensor, entry, feather: float,
                color_match: float, grow: float) -> None:
    """One crop (3, s, s) in [0, 1] blended into out[entry.batch_index] in place, its weight into masks."""
    from kornia.geometry.transform import warp_perspective

    h, w = entry.source_size
    if out.shape[2:] != (h, w):
        raise InputError(f"the alignment is of a {w}x{h} photo, the original is {out.shape[3]}x{out.shape[2]}")
    b = entry.batch_index
    if entry.passthrough:
        out[b] = _resize(crop[None], (h, w))[0].clamp(0, 1).to(out.dtype)
        masks[b] = 1
        return
    s = crop.shape[-1]
    side = float(np.hypot(*np.diff(crop_corners(entry.matrix_for(s), s)[[0, 3]], axis=0)[0]))
    if s > 2 * side:  # a crop much finer than the face in the photo: antialias down to 2x the face first,
        s = max(int(math.ceil(2 * side)), 1)  # which the bilinear warp then halves without aliasing
        crop = _resize(crop[None], (s, s))[0].clamp(0, 1)
    matrix = entry.matrix_for(s)
    if color_match > 0:
        reference, inside = _photo_in_crop(out[b], matrix, s)
        crop = match_colours(crop, reference, _border_band(s, feather, grow, out.device) * inside, color_match)
    mask = face_mask(s, feather, out.device, grow=grow)
    corners = crop_corners(matrix, s)
    x0, y0 = max(int(math.floor(corners[:, 0].min())), 0), max(int(math.floor(corners[:, 1].min())), 0)
    x1, y1 = min(int(math.ceil(corners[:, 0].max())) + 1, w), min(int(math.ceil(corners[:, 1].max())) + 1, h)
    if x1 <= x0 or y1 <= y0:
        return
    to_box = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]]) @ matrix
    src = torch.cat([crop * mask, mask[None]])[None]  # premultiplied: zero weight outside the crop
    warped = warp_perspective(src, device_const(to_box, out.device, torch.float32)[None],
                              (y1 - y0, x1 - x0), mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    m = warped[3:].clamp(0, 1)
    box = out[b, :, y0:y1, x0:x1]
    blended = box * (1 - m) + warped[:3].to(box.dtype)
    out[b, :, y0:y1, x0:x1] = torch.where(m > 0, blended.clamp(0, 1), box)
    masks[b, y0:y1, x0:x1] = torch.maximum(masks[b, y0:y1, x0:x1], m[0])


def paste_back(original, edited: torch.Tensor, alignment: Alignment, feather: float = 0.1,
               color_match: float = 1.0, grow: float = 0.0) -> torch.Tensor:
    """`paste_back_with_mask` without the mask: the photos (B, 3, H, W)."""
    return paste_back_with_mask(original, edited, alignment, feather, color_match, grow)[0]


def paste_edits(original, edited: torch.Tensor, alignment: Alignment, feather: float = 0.1,
                progress=None, color_match: float = 1.0, grow: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Edited crops pasted into their photos, broadcast as the CLI does: one crop per aligned face gives the
    photo batch once; one aligned face edited N ways gives N photos (each with one edit). Other counts are an
    InputError. progress: called as progress(k, total) after each of the `total` pastes (a progress bar): each
    face when every face has its edit (a video's frames), else each edit's photos.
    Returns the photos and their blend masks (see `paste_back_with_mask`)."""
    n_faces, n_edits = len(alignment), edited.shape[0]
    if n_edits == n_faces:  # one paste of the whole batch: no second copy of it
        return paste_back_with_mask(original, edited, alignment, feather, color_match, grow, progress)
    if n_faces == 1:
        groups = [slice(k, k + 1) for k in range(n_edits)]
    else:
        raise InputError(f"{n_edits} edited images do not fit an alignment of {n_faces} faces: give one edit "
                         "per face, or align one face and edit it several ways")
    images, masks = [], []
    for k, g in enumerate(groups):
        image, mask = paste_back_with_mask(original, edited[g], alignment, feather, color_match, grow)
        images.append(image)
        masks.append(mask)
        if progress is not None:
            progress(k, len(groups))
    return torch.cat(images), torch.cat(masks)
