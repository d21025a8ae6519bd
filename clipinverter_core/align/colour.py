"""Step 4a, colour match: the edited crop takes the photo's colour statistics where the two meet.

Method: the linear Monge-Kantorovich transfer (Pitie and Kokaram, 2007): the affine RGB map that carries the
edited border's mean and 3x3 covariance onto the photo's, the optimal-transport map between the two Gaussians,
in closed form. Why this one: a colour cast between a generator's output and a photo is mostly affine in RGB
(white balance scales the channels, tint and saturation mix them); this map undoes any affine cast exactly and
a per-channel cast in Lab nearly so. Reinhard's per-channel mean/std in Lab (the usual choice) cannot undo a
white-balance gain, because Lab's channels mix R, G and B. Measured on two of the test photos (the astronaut and
its crop whose face reaches past the edge; tests/test_paste.py's casts): per-channel Lab cut the border error of
a white-balance cast 3.8-4.1x, this map 24-40x, and a Lab cast 10-17x.
The statistics come from the border band of the blend mask only, the pixels where the pasted crop and the photo
overlap: that is where a mismatch shows as a seam, and a face edit (new hair colour, make-up) in the middle of
the crop does not move them. The map is applied to the whole crop, so the edit's contrasts inside the face are
kept. It runs on the crop's device (a 3x3 eigendecomposition there), with no host copies.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# The map's gains (its eigenvalues) stay within [1 / MAX_GAIN, MAX_GAIN]: a border band that differs in
# contrast more than that is other content, not a colour cast, and a flat edited border (a uniform background)
# must not be stretched into noise.
MAX_GAIN = 4.0
VARIANCE_FLOOR = (1 / 255) ** 2  # added to both covariances: one 8-bit level of noise, so neither is singular
# The statistics are taken on both crops box-filtered to this side: a colour cast lives in the low frequencies,
# and the crop (antialiased, or a generator's output) and the photo resampled onto it (bilinear) differ in their
# fine texture; matching that would sharpen or soften the face, which is not the colour match's job.
STATS_SIDE = 64


def _sym_power(s: torch.Tensor, p: float, lo: float = 0.0, hi: float = float("inf")) -> torch.Tensor:
    """s ** p for a symmetric positive semi-definite 3x3 matrix, its eigenvalues clamped to [lo, hi] first."""
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp(lo, hi).pow(p)[None, :]) @ v.T


def _moments(x: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean (3,) and covariance (3, 3) of the pixels of (3, H, W) under (H, W) weights."""
    flat, w = x.reshape(3, -1), weights.reshape(-1)
    total = w.sum().clamp_min(1e-8)
    mean = (flat * w).sum(1) / total
    d = flat - mean[:, None]
    eye = torch.eye(3, device=x.device, dtype=x.dtype)
    return mean, (d * w) @ d.T / total + VARIANCE_FLOOR * eye


def transfer_map(edited: torch.Tensor, reference: torch.Tensor, weights: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(T, mean_e, mean_r): y = T (x - mean_e) + mean_r carries edited's colour statistics under `weights` onto
    reference's. T = Se^-1/2 (Se^1/2 Sr Se^1/2)^1/2 Se^-1/2, symmetric, its gains clamped (MAX_GAIN)."""
    mean_e, cov_e = _moments(edited, weights)
    mean_r, cov_r = _moments(reference, weights)
    root, inv_root = _sym_power(cov_e, 0.5), _sym_power(cov_e, -0.5)
    t = inv_root @ _sym_power(root @ cov_r @ root, 0.5) @ inv_root
    return _sym_power((t + t.T) / 2, 1.0, 1 / MAX_GAIN, MAX_GAIN), mean_e, mean_r


def match_colours(edited: torch.Tensor, reference: torch.Tensor, weights: torch.Tensor,
                  strength: float = 1.0) -> torch.Tensor:
    """edited (3, s, s) in [0, 1] recoloured so that its colour mean and covariance under `weights` (s, s) are
    those of `reference` (3, s, s) there; strength 0..1 blends from the edited crop (0) to the matched one (1)."""
    if strength <= 0:
        return edited
    x = edited.float()
    k = max(x.shape[-1] // STATS_SIDE, 1)
    pool = (lambda a: F.avg_pool2d(a[None], k)[0]) if k > 1 else (lambda a: a)
    t, mean_e, mean_r = transfer_map(pool(x), pool(reference.float()), pool(weights.float()[None])[0])
    matched = (t @ (x.reshape(3, -1) - mean_e[:, None]) + mean_r[:, None]).reshape(x.shape).clamp(0, 1)
    return (x + (matched - x) * min(float(strength), 1.0)).to(edited.dtype)
