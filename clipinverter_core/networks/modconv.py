"""StyleGAN2's modulated convolution, in its official form and its fused inference form, with the pieces that
the training's autograd form (training/synthesis.py) shares with them.

The official layer convolves sample b with its own weight W_b = d_b * scale * W * s_b, demodulated by
d_b[o] = rsqrt(sum_{c,k} (scale * W * s_b)[o, c, k]^2 + 1e-8), all samples in one grouped convolution. The same map
with the one weight W for the whole batch:
    conv(x, W_b)[o] = d_b[o] * conv(x * s'_b, W)[o],   s'_b = scale * s_b,
    d_b[o] = rsqrt(sum_c s'_b[c]^2 * sum_k W[o, c, k]^2 + 1e-8)
(the blur after the transposed convolution is linear per channel, so d_b commutes with it). The three forms:
- `ModulatedConv2d.forward`: the official one, step for step. The reference.
- `ModulatedConv2d.fused_conv` (after `fuse()`): inference. Batch 1 folds s'_b, d_b, a gain and the bias into the
  weight (one dense convolution); larger batches use the identity above, in place.
- `training.synthesis.modulated_conv`: the identity above for gradients to the codes (no in-place ops,
  convolutions whose backward keeps only the frozen weight).
Shared: `ModulatedConv2d.styles` (s'_b), `demodulation` (d_b from `weight_sq_sum`) and `ModulatedConv2d.dense`
(the layer's convolution with one weight for the batch).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .blur import BLUR_KERNEL, Blur
from .layers import EqualLinear

STYLE_DIM = 512               # the width of W, and of the style codes every modulation reads
DEMOD_EPS = 1e-8


def convolve(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, transposed: bool = False,
             stride: int = 1, padding: int = 0, groups: int = 1) -> torch.Tensor:
    """F.conv2d, or F.conv_transpose2d where `transposed`."""
    conv = F.conv_transpose2d if transposed else F.conv2d
    return conv(x, weight, bias, stride=stride, padding=padding, groups=groups)


def weight_sq_sum(weight: torch.Tensor) -> torch.Tensor:
    """sum_k W[o, c, k]^2 of a weight (O, C, k, k), as (C, O): the weight's part of the demodulation."""
    return weight.square().sum((2, 3)).t()


def demodulation(s: torch.Tensor, weight_sq: torch.Tensor) -> torch.Tensor:
    """d_b (B, O) from the styles s'_b (B, C) and `weight_sq_sum` of the weight (C, O)."""
    return torch.rsqrt(s.square() @ weight_sq + DEMOD_EPS)


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution; `upsample` uses a stride-2 transposed conv followed by a blur.

    `forward` is the official formulation. `fused_conv` is the fast path (after `fuse()`); it returns
    gain * (demodulated conv + bias) so that the caller only adds noise and applies the activation."""

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, demodulate: bool = True,
                 upsample: bool = False):
        super().__init__()
        self.in_channel, self.out_channel, self.kernel_size = in_channel, out_channel, kernel_size
        self.demodulate, self.upsample = demodulate, upsample
        self.scale = 1 / math.sqrt(in_channel * kernel_size ** 2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.empty(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(STYLE_DIM, in_channel)
        if upsample:
            factor = 2
            p = (len(BLUR_KERNEL) - factor) - (kernel_size - 1)
            self.blur = Blur(pad=((p + 1) // 2 + factor - 1, p // 2 + 1), gain=factor ** 2)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        style = self.modulation(style).view(b, 1, c, 1, 1)
        weight = self.scale * self.weight * style
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + DEMOD_EPS)
            weight = weight * demod.view(b, self.out_channel, 1, 1, 1)
        k = self.kernel_size
        x = x.reshape(1, b * c, h, w)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(b * c, self.out_channel, k, k)
            out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=b)
            out = self.blur(out.view(b, self.out_channel, out.shape[2], out.shape[3]))
        else:
            weight = weight.reshape(b * self.out_channel, c, k, k)
            out = F.conv2d(x, weight, padding=self.padding, groups=b)
            out = out.view(b, self.out_channel, out.shape[2], out.shape[3])
        return out

    # --- shared by the fused and the training forms ----------------------------------------------------------
    def styles(self, style: torch.Tensor, fused: bool = False) -> torch.Tensor:
        """s'_b = scale * s_b (B, C) of the style codes (B, 512); `fused`: the modulation's fast form."""
        return (self.modulation.fused(style) if fused else self.modulation(style)) * self.scale

    def dense(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, conv=convolve,
              blur=None) -> torch.Tensor:
        """x convolved with one weight (O, C, k, k) for the whole batch, as this layer convolves: the stride-2
        transposed conv and the blur where it upsamples (then the bias, in place), else a same-size conv with the
        bias. `conv` (convolve's arguments) and `blur` replace the plain convolution and the layer's Blur."""
        if not self.upsample:
            return conv(x, weight, bias, padding=self.padding)
        out = (blur or self.blur)(conv(x, weight.transpose(0, 1), transposed=True, stride=2))
        return out.add_(bias.view(1, -1, 1, 1)) if bias is not None else out

    # --- the fused inference form --------------------------------------------------------------------------
    def fuse(self) -> None:
        """Precomputes sum_k weight^2 per (in, out) channel pair: demodulation becomes a (B, C) @ (C, O)
        product of squared (scaled) styles, with no per-sample weight tensor."""
        self.refresh()
        # Same values, stored in the layout the channels_last convolution reads (the conv would otherwise copy
        # the weight on every call): channels_last for conv2d, and for conv_transpose2d's (in, out, k, k) view.
        cl = torch.channels_last
        if self.upsample:
            self.weight.data = self.weight.data[0].transpose(0, 1).contiguous(memory_format=cl).transpose(0, 1)[None]
        else:
            self.weight.data = self.weight.data[0].contiguous(memory_format=cl)[None]

    def refresh(self) -> None:
        """Derives the fused form's `weight_sq` from the weight again: after the weight changed (tuned weights
        applied, a ComfyUI patch)."""
        self.register_buffer("weight_sq", weight_sq_sum(self.weight[0].float()).contiguous().to(self.weight.dtype),
                             persistent=False)

    def fused_conv(self, x: torch.Tensor, style: torch.Tensor, bias: torch.Tensor | None = None,
                   gain: float = 1.0) -> torch.Tensor:
        """gain * (modulated, demodulated conv of x + bias); bias (O,) or None."""
        b = x.shape[0]
        s = self.styles(style, fused=True)                                      # (B, C)
        if self.demodulate:
            d = demodulation(s, self.weight_sq) * gain                          # (B, O)
        else:
            d = s.new_full((b, self.out_channel), gain)
        dt = x.dtype  # the compute dtype; styles and demodulation stay in the parameters' dtype
        bias = (bias * gain).to(dt) if bias is not None else None
        weight = self.weight[0]
        if b == 1:  # everything folds into the one weight: a plain dense convolution
            return self.dense(x, (weight * (s.view(1, -1, 1, 1) * d.view(-1, 1, 1, 1))).to(dt), bias)
        out = self.dense(x * s.view(b, -1, 1, 1).to(dt), weight.to(dt))  # the style on the input, d on the output
        d = d.view(b, -1, 1, 1).to(dt)
        return torch.addcmul(bias.view(1, -1, 1, 1), out, d, out=out) if bias is not None else out.mul_(d)
