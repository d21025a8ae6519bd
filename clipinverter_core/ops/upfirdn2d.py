"""upfirdn2d: upsample by zero insertion, pad, FIR-filter, downsample; the blur of StyleGAN2.

Conventions (rosinality / official CLIPInverter): `pad = (p0, p1)` pads (or, when negative, crops) both
spatial axes by p0 before and p1 after, after upsampling; the kernel is applied as a true convolution
(flipped), so for the symmetric kernels of StyleGAN2 flipping changes nothing. Output size per axis:
(in * up + p0 + p1 - k) // down + 1.

Two implementations compute the same thing:
- `impl="ref"`: the official formulation (every channel as a single-plane image, one conv per plane).
  It is the test oracle.
- `impl="fast"` (default): one depthwise convolution over all channels; when upsampling, a polyphase
  form: the up^2 phases of the output as up^2 small kernels over the input (no zero-inserted copy, up^2
  times fewer multiplications), interleaved by a pixel shuffle.

The fast path's filter weights depend only on the kernel, `up` and `pad`: `prepare_taps` computes them once,
and the modules that filter (stylegan2.Blur, Upsample) keep them as buffers and pass them in as `taps`, so a
call builds no tensor from host data (no host-to-device copy per layer, nothing illegal in CUDA-graph capture).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0), impl: str = "fast", taps: torch.Tensor | None = None) -> torch.Tensor:
    """x: (N, C, H, W); kernel: (kh, kw). Returns (N, C, H', W'). `taps`: `prepare_taps(kernel, up, pad, down)`,
    kept by the caller (fast path); computed here when not given."""
    assert x.ndim == 4 and kernel.ndim == 2, (x.shape, kernel.shape)
    if impl == "ref":
        return _upfirdn2d_ref(x, kernel, up, down, pad)
    if taps is None:
        taps = prepare_taps(kernel, up, pad, down)
    if taps.ndim == 4:
        return _upfirdn2d_polyphase(x, taps, kernel.shape, up, pad)
    return _upfirdn2d_depthwise(x, taps, up, down, pad)


def _polyphase_fits(kernel_shape, up: int, pad: tuple[int, int]) -> bool:
    """Whether the polyphase form applies, for any input size: the output is a whole number of phases."""
    kh, kw = kernel_shape
    return up > 1 and (sum(pad) - kh + 1) % up == 0 and (sum(pad) - kw + 1) % up == 0


def prepare_taps(kernel: torch.Tensor, up: int = 1, pad: tuple[int, int] = (0, 0), down: int = 1) -> torch.Tensor:
    """The fast path's filter weights, on the kernel's device: the up^2 polyphase kernels (up^2, 1, sy, sx)
    where that form applies (upsampling without downsampling), else the flipped kernel (kh, kw)."""
    kh, kw = kernel.shape
    if down != 1 or not _polyphase_fits(kernel.shape, up, pad):
        return torch.flip(kernel, [0, 1])
    ty, _, sy = _polyphase_taps(kh, up, pad[0])
    tx, _, sx = _polyphase_taps(kw, up, pad[0])
    kf = torch.flip(kernel, [0, 1])
    kf = torch.cat([kf, kf.new_zeros(kh, 1)], 1)
    kf = torch.cat([kf, kf.new_zeros(1, kw + 1)], 0)  # index -1 reads a zero
    iy = torch.tensor(ty, device=kernel.device)[:, None, :, None]
    ix = torch.tensor(tx, device=kernel.device)[None, :, None, :]
    return kf[iy, ix].reshape(up * up, 1, sy, sx)                    # (phase_y * up + phase_x, 1, sy, sx)


def _upsample_zeros(x: torch.Tensor, up: int) -> torch.Tensor:
    if up == 1:
        return x
    n, c, h, w = x.shape
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
    return x.reshape(n, c, h * up, w * up)


def _pad_or_crop(x: torch.Tensor, p0: int, p1: int) -> torch.Tensor:
    x = F.pad(x, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    h, w = x.shape[2:]
    return x[:, :, max(-p0, 0):h - max(-p1, 0), max(-p0, 0):w - max(-p1, 0)]


def _polyphase_taps(k: int, up: int, p0: int):
    """One axis of upsampling by `up` then correlating with a flipped kernel of length k, as `up` phases.

    Output y = up * i + phase reads input i + L + s with weight taps[phase][s], s in [0, R - L).
    Returns (taps as index lists into the flipped kernel (-1: zero), L, extra input needed on the right)."""
    phases = []
    for phase in range(up):
        t0 = (p0 - phase) % up
        offset = (phase + t0 - p0) // up
        phases.append((offset, list(range(t0, k, up))))
    lo = min(o for o, t in phases)
    hi = max(o + len(t) for o, t in phases)
    taps = []
    for o, t in phases:
        row = [-1] * (hi - lo)
        for j, tap in enumerate(t):
            row[o - lo + j] = tap
        taps.append(row)
    return taps, lo, hi - lo


def _upfirdn2d_polyphase(x, phases, kernel_shape, up, pad):
    n, c, h, w = x.shape
    kh, kw = kernel_shape
    p0, p1 = pad
    out_h, out_w = h * up + p0 + p1 - kh + 1, w * up + p0 + p1 - kw + 1
    _, ly, sy = _polyphase_taps(kh, up, p0)   # Python numbers only: the weights are `phases`
    _, lx, sx = _polyphase_taps(kw, up, p0)
    phases = phases.to(x.dtype)
    # input rows ly .. ly + out_h // up + sy - 2 (negative pads crop, pads beyond the input are zeros)
    pad_h = [-ly, out_h // up + sy - 1 + ly - h]
    pad_w = [-lx, out_w // up + sx - 1 + lx - w]
    x = F.pad(x, pad_w + pad_h)
    y = F.conv2d(x, phases.repeat(c, 1, 1, 1), groups=c)                 # (n, c * up^2, out_h / up, out_w / up)
    return F.pixel_shuffle(y, up)


def _upfirdn2d_depthwise(x, flipped, up, down, pad):
    c = x.shape[1]
    x = _upsample_zeros(x, up)
    p0, p1 = pad
    if p0 == p1 >= 0:  # symmetric padding: let the convolution pad (no padded copy of x)
        conv_pad = p0
    else:
        x, conv_pad = _pad_or_crop(x, p0, p1), 0
    k = flipped.to(x.dtype)
    weight = k[None, None].expand(c, 1, *k.shape)
    return F.conv2d(x, weight, groups=c, stride=down, padding=conv_pad)


def _upfirdn2d_ref(x, kernel, up, down, pad):
    # The official formulation, step for step: channels folded into the batch, one plane at a time.
    n, c, in_h, in_w = x.shape
    kh, kw = kernel.shape
    p0, p1 = pad
    out = x.reshape(-1, in_h, 1, in_w, 1, 1)
    out = F.pad(out, [0, 0, 0, up - 1, 0, 0, 0, up - 1])
    out = out.view(-1, in_h * up, in_w * up, 1)
    out = F.pad(out, [0, 0, max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    out = out[:, max(-p0, 0):out.shape[1] - max(-p1, 0), max(-p0, 0):out.shape[2] - max(-p1, 0), :]
    out = out.permute(0, 3, 1, 2).reshape(-1, 1, in_h * up + p0 + p1, in_w * up + p0 + p1)
    w = torch.flip(kernel, [0, 1]).view(1, 1, kh, kw).to(out.dtype)
    out = F.conv2d(out, w)
    out = out.reshape(-1, 1, out.shape[2], out.shape[3]).permute(0, 2, 3, 1)
    out = out[:, ::down, ::down, :]
    out_h = (in_h * up + p0 + p1 - kh) // down + 1
    out_w = (in_w * up + p0 + p1 - kw) // down + 1
    return out.reshape(n, c, out_h, out_w)
