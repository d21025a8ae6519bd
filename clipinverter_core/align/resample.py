"""Step 3a, resampling helpers in torch (any device): PIL's antialiased Lanczos resize as banded matrix
products, numpy/scipy reflection padding, scipy's Gaussian blur (by FFT) and numpy's median.
"""
from __future__ import annotations

import numpy as np
import torch

from .geometry import LANCZOS_LOBES

def device_const(a: np.ndarray, device, dtype) -> torch.Tensor:
    """A numpy constant on the device, cast on the CPU first (MPS has no float64)."""
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype).to(device)


def _lanczos(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < LANCZOS_LOBES, np.sinc(x) * np.sinc(x / LANCZOS_LOBES), 0.0)


def _lanczos_taps(in_size: int, out_size: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights (hi - lo, taps) of outputs lo..hi-1 of PIL's antialiased Lanczos resize."""
    scale = in_size / out_size
    support = LANCZOS_LOBES * max(scale, 1.0)
    centre = (np.arange(lo, hi) + 0.5) * scale
    start = np.clip(np.trunc(centre - support + 0.5), 0, None).astype(np.int64)
    stop = np.clip(np.trunc(centre + support + 0.5), None, in_size).astype(np.int64)
    idx = start[:, None] + np.arange(int((stop - start).max()))[None]
    w = _lanczos((idx - centre[:, None] + 0.5) / max(scale, 1.0)) * (idx < stop[:, None])
    return np.minimum(idx, stop[:, None] - 1), w / w.sum(1, keepdims=True)


def _apply_taps(x: torch.Tensor, dim: int, idx: np.ndarray, w: np.ndarray, block: int = 32) -> torch.Tensor:
    """sum_k w[:, k] * x[idx[:, k]] along dim (1 or 2 of (C, H, W); idx relative to x), as small dense
    matrix products over blocks of outputs: a resize filter is a band, and a band is a row of blocks."""
    outs = []
    for b0 in range(0, len(idx), block):
        bi, bw = idx[b0:b0 + block], w[b0:b0 + block]
        lo, hi = int(bi.min()), int(bi.max()) + 1
        dense = np.zeros((len(bi), hi - lo))
        np.add.at(dense, (np.arange(len(bi))[:, None], bi - lo), bw)
        dense = device_const(dense, x.device, x.dtype)
        outs.append(dense @ x[:, lo:hi] if dim == 1 else x[..., lo:hi] @ dense.T)
    return torch.cat(outs, dim)


def _reflect_index(i: np.ndarray, n: int, symmetric: bool) -> np.ndarray:
    """numpy.pad 'reflect' (d c b | a b c d) or scipy 'reflect' = symmetric (c b a | a b c) indices."""
    if n == 1:
        return np.zeros_like(i)
    period = 2 * n if symmetric else 2 * (n - 1)
    i = np.mod(i, period)
    return np.where(i >= n, period - 1 - i if symmetric else period - i, i)


def _pad_reflect(x: torch.Tensor, dim: int, before: int, after: int, symmetric: bool) -> torch.Tensor:
    """x extended along dim by mirroring (see _reflect_index); slices when the margins fit, else a gather."""
    n = x.shape[dim]
    edge = 0 if symmetric else 1
    if max(before, after) + edge > n:
        idx = _reflect_index(np.arange(-before, n + after), n, symmetric)
        return x.index_select(dim, torch.from_numpy(idx).to(x.device))
    parts = [x.narrow(dim, edge, before).flip(dim), x, x.narrow(dim, n - edge - after, after).flip(dim)]
    return torch.cat(parts, dim)


def _fft_len(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: FFT sizes with small factors are the fast ones."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _convolve_last(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """'valid' correlation of the last axis with a 1-D kernel, by FFT (long kernels: sigma ~ 10-40 px).

    The transform runs in float32 at least (float64 stays float64): cuFFT takes half precision only for
    power-of-two lengths and the CPU not at all; the result comes back in x's dtype."""
    n, k = x.shape[-1], kernel.shape[0]
    length = _fft_len(n + k - 1)
    work = torch.promote_types(x.dtype, torch.float32)
    spectrum = torch.fft.rfft(x.to(work), n=length) * torch.fft.rfft(kernel.to(work).flip(0), n=length)
    return torch.fft.irfft(spectrum, n=length)[..., k - 1:n].to(x.dtype)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter over H and W of (C, H, W): truncate 4, mode 'reflect'."""
    radius = int(4.0 * sigma + 0.5)
    t = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k = device_const(k / k.sum(), x.device, x.dtype)
    y = _convolve_last(_pad_reflect(x, 2, radius, radius, True), k)
    y = _convolve_last(_pad_reflect(y, 1, radius, radius, True).transpose(1, 2), k).transpose(1, 2)
    return y.contiguous()


def _median(x: torch.Tensor) -> torch.Tensor:
    """numpy.median per channel of (C, H, W) (the mean of the two middle values for an even count)."""
    flat = x.reshape(x.shape[0], -1)
    n = flat.shape[1]
    lo = flat.kthvalue((n + 1) // 2, dim=1).values
    if n % 2 == 0:  # the next value up: lo again if it repeats, else the smallest value above it
        above = flat.masked_fill(flat <= lo[:, None], float("inf")).amin(1)
        hi = torch.where((flat <= lo[:, None]).sum(1) > n // 2, lo, above)
        lo = (lo + hi) / 2
    return lo[:, None, None]
