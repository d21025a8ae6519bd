"""Step 3b, the crop: the official preprocessing's shrink, crop, reflect-pad + blur and quad transform,
in torch on the photo's device (kornia does the warp)."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from .geometry import BLUR_FRACTION, BORDER_FRACTION, MIN_BORDER, PAD_FRACTION, _quad_matrix, ffhq_quad
from .resample import _apply_taps, _gaussian_blur, _lanczos_taps, _median, _pad_reflect, device_const


def align_face(image: torch.Tensor, landmarks: np.ndarray, size: int = 256) -> tuple[torch.Tensor, np.ndarray]:
    """The FFHQ crop of one face: (3, H, W) float photo -> ((3, size, size), matrix aligned -> photo pixels).

    Same steps and numbers as the official preprocessing with output_size = transform_size = size; only the
    region around the face is computed, in the photo's dtype and on its device."""
    return align_quad(image, ffhq_quad(landmarks), size)


def _shrink(quad: np.ndarray, size: int, hw: tuple[int, int]) -> tuple[int, tuple[int, int], np.ndarray]:
    """Shrink: a face more than 4x the output is first reduced by an integer factor (Lanczos, antialiased).
    Returns (the factor (0 or 1: none), the reduced (H, W), reduced pixel -> photo pixel)."""
    h, w = hw
    quad = np.asarray(quad, dtype=np.float64)
    shrink = int(np.floor(np.hypot(*(quad[3] - quad[0])) / size * 0.5))
    if shrink <= 1:
        return shrink, (h, w), np.eye(3)
    rw, rh = int(np.rint(w / shrink)), int(np.rint(h / shrink))
    sx, sy = w / rw, h / rh  # the resize's true scale; the recipe divides the quad by `shrink`
    return shrink, (rh, rw), np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])


def crop_matrix(quad: np.ndarray, size: int, hw: tuple[int, int]) -> np.ndarray:
    """The matrix (aligned pixel -> photo pixel) that `align_quad` returns for this quad in a photo of (H, W),
    without the pixels (a track written for other tools)."""
    shrink, _, to_photo = _shrink(quad, size, hw)
    return to_photo @ _quad_matrix(np.asarray(quad, dtype=np.float64) / max(shrink, 1), size)


def align_quad(image: torch.Tensor, quad: np.ndarray, size: int = 256) -> tuple[torch.Tensor, np.ndarray]:
    """`align_face` from the quad (4, 2) itself (a tracked, smoothed quad)."""
    from kornia.geometry.transform import warp_perspective

    _, h, w = image.shape
    shrink, (rh, rw), to_photo = _shrink(quad, size, (h, w))
    quad = np.asarray(quad, dtype=np.float64) / max(shrink, 1)
    qsize = float(np.hypot(*(quad[3] - quad[0])))  # the square's side

    # Crop: the quad's bounding box plus a border, within the (shrunk) photo.
    border = max(int(np.rint(qsize * BORDER_FRACTION)), MIN_BORDER)
    x0, y0 = int(np.floor(quad[:, 0].min())), int(np.floor(quad[:, 1].min()))
    x1, y1 = int(np.ceil(quad[:, 0].max())), int(np.ceil(quad[:, 1].max()))
    cx0, cy0, cx1, cy1 = max(x0 - border, 0), max(y0 - border, 0), min(x1 + border, rw), min(y1 + border, rh)
    if cx1 <= cx0 or cy1 <= cy0:
        raise InputError("the face lies outside the photo")
    if shrink > 1:
        xi, xw = _lanczos_taps(w, rw, cx0, cx1)
        yi, yw = _lanczos_taps(h, rh, cy0, cy1)
        region = image[:, yi.min():yi.max() + 1, xi.min():xi.max() + 1]
        region = _apply_taps(region, 2, xi - xi.min(), xw)  # PIL resizes horizontally first
        region = _apply_taps(region, 1, yi - yi.min(), yw)
    else:
        region = image[:, cy0:cy1, cx0:cx1]
    quad = quad - [cx0, cy0]
    origin = np.array([[1, 0, cx0], [0, 1, cy0], [0, 0, 1]], dtype=np.float64)

    # Pad: a quad within 4 px of the photo's edge is completed by reflection, blurred and flattened outwards.
    ch, cw = region.shape[1:]
    px0, py0 = max(-int(np.floor(quad[:, 0].min())) + border, 0), max(-int(np.floor(quad[:, 1].min())) + border, 0)
    px1 = max(int(np.ceil(quad[:, 0].max())) - cw + border, 0)
    py1 = max(int(np.ceil(quad[:, 1].max())) - ch + border, 0)
    if max(px0, py0, px1, py1) > border - 4:
        p = int(np.rint(qsize * PAD_FRACTION))
        px0, py0, px1, py1 = max(px0, p), max(py0, p), max(px1, p), max(py1, p)
        region = _pad_reflect(_pad_reflect(region, 1, py0, py1, False), 2, px0, px1, False)
        ph, pw = region.shape[1:]
        yy = torch.arange(ph, device=image.device, dtype=region.dtype)[:, None]
        xx = torch.arange(pw, device=image.device, dtype=region.dtype)[None, :]
        mask = torch.maximum(1 - torch.minimum(xx / px0, (pw - 1 - xx) / px1),
                             1 - torch.minimum(yy / py0, (ph - 1 - yy) / py1))
        region = region + (_gaussian_blur(region, qsize * BLUR_FRACTION) - region) * (mask * 3 + 1).clamp(0, 1)
        region = region + (_median(region) - region) * mask.clamp(0, 1)
        quad = quad + [px0, py0]
        origin = origin @ np.array([[1, 0, -px0], [0, 1, -py0], [0, 0, 1]], dtype=np.float64)

    # Transform: sample the quad bilinearly at the output size.
    to_region = _quad_matrix(quad, size)
    region_to_aligned = device_const(np.linalg.inv(to_region), image.device, torch.float32)[None]
    aligned = warp_perspective(region[None].float(), region_to_aligned, (size, size), mode="bilinear",
                               padding_mode="zeros", align_corners=True)[0].to(image.dtype)
    return aligned.clamp(0, 1), to_photo @ origin @ to_region
