"""The generator's synthesis for training: the official modulated convolution with the weight shared by the
batch (the identity networks/modconv.py derives), so that gradients to the codes are cheap.

The official ModulatedConv2d builds a weight per sample, W_b = scale * W * s_b (demodulated by
d_b = rsqrt(sum_{c,k} W_b^2 + 1e-8)), and runs one grouped convolution. Here every layer computes
d_b[o] * conv(x * s'_b, W)[o]: one dense convolution with the shared frozen weight, whose backward needs the input
gradient only, where the official form also differentiates a (B, O, C, k, k) weight (a second convolution's cost,
and its memory: 12.5 GB at a float64 batch of 3). The values agree to rounding (tests/test_losses.py checks
float64 to 1e-12).
The blurs (after the transposed convolution, and the RGB skip's x2 upsampling) run as one depthwise
convolution over all channels (upfirdn2d's fast form), where the official form folds every channel into the
batch and convolves one plane at a time: the same multiplications, equal to the bit on CPU, 10x faster
forward and backward (a quarter of a training step was the single-plane blur's backward).
Every convolution here has a frozen weight, so its backward needs the weight alone: `frozen_conv` keeps only the
weight for it, where autograd's own convolution node also keeps its input (a third of the generator's saved
tensors: 1.1 of 3.5 GB at a float64 batch of 3 at 256). Its backward is the same aten kernel with the same
arguments, so the gradients are autograd's own, to the bit.
Noise, bias and activation are the generator's own modules, the official ones.
"""
from __future__ import annotations

import torch

from ..networks.blocks import StyledConv, ToRGB
from ..networks.blur import Blur
from ..networks.modconv import ModulatedConv2d, convolve, demodulation, weight_sq_sum
from ..networks.stylegan2 import Generator
from ..ops import upfirdn2d


class _FrozenConv(torch.autograd.Function):
    """conv2d / conv_transpose2d(x, weight) whose backward computes the input's gradient from the weight alone."""

    @staticmethod
    def forward(ctx, x, weight, transposed: bool, stride: int, padding: int, groups: int):
        ctx.save_for_backward(weight)
        ctx.args, ctx.x_shape = (transposed, stride, padding, groups), x.shape
        return convolve(x, weight, None, transposed, stride, padding, groups)

    @staticmethod
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        transposed, stride, padding, groups = ctx.args
        shape_only = grad.new_zeros(()).expand(ctx.x_shape)  # the kernel reads the input's shape, not its values
        grad_x, _, _ = torch.ops.aten.convolution_backward(
            grad, shape_only, weight, None, [stride] * 2, [padding] * 2, [1, 1], transposed, [0, 0], groups,
            [True, False, False])
        return grad_x, None, None, None, None, None


def frozen_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, transposed: bool = False,
                stride: int = 1, padding: int = 0, groups: int = 1) -> torch.Tensor:
    """`convolve` with a weight that takes no gradient, keeping only the weight for the backward pass (a bias,
    or a weight that takes a gradient, takes autograd's own convolution)."""
    if bias is not None or weight.requires_grad or not torch.is_grad_enabled():
        return convolve(x, weight, bias, transposed, stride, padding, groups)
    return _FrozenConv.apply(x, weight, transposed, stride, padding, groups)


def blur(layer: Blur, x: torch.Tensor) -> torch.Tensor:
    """The generator's Blur (or Upsample) as one depthwise convolution: its kernel, up and pad, fast form
    (upfirdn2d's, through frozen_conv where the padding is symmetric, as in every modulated convolution's blur)."""
    p0, p1 = layer.pad
    if layer.up == 1 and p0 == p1 >= 0:
        k = torch.flip(layer.kernel, [0, 1]).to(x.dtype)
        c = x.shape[1]
        return frozen_conv(x, k[None, None].expand(c, 1, *k.shape), padding=p0, groups=c)
    return upfirdn2d(x, layer.kernel, up=layer.up, pad=layer.pad, impl="fast")


def modulated_conv(conv: ModulatedConv2d, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """conv(x, style) as the official ModulatedConv2d computes it, through one dense convolution."""
    s = conv.styles(style)                                                    # (B, C)
    weight = conv.weight[0]                                                   # (O, C, k, k)
    out = conv.dense(x * s[:, :, None, None], weight, conv=frozen_conv, blur=lambda y: blur(conv.blur, y))
    if conv.demodulate:
        out = out * demodulation(s, weight_sq_sum(weight))[:, :, None, None]  # (B, O)
    return out


def styled_conv(layer: StyledConv, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return layer.activate(layer.noise(modulated_conv(layer.conv, x, style), noise))


def to_rgb(layer: ToRGB, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
    out = modulated_conv(layer.conv, x, style) + layer.bias
    return out if skip is None else out + blur(layer.upsample, skip)


def synthesis(gen: Generator, conv_codes: torch.Tensor, rgb_codes: torch.Tensor, noise: bool = True) -> torch.Tensor:
    """Generator.synthesis (the official layer order) on the dense modulated convolution, with the stored noise
    buffers, or with every noise input zero (`noise=False`: NVlabs' noise_mode 'none')."""
    noises = [getattr(gen.noises, f"noise_{i}") for i in range(gen.n_conv)]
    if not noise:
        noises = [torch.zeros_like(n) for n in noises]
    out = styled_conv(gen.conv1, gen.input(conv_codes.shape[0]), conv_codes[:, 0], noises[0])
    skip = to_rgb(gen.to_rgb1, out, rgb_codes[:, 0], None)
    for j in range(gen.log_size - 2):
        out = styled_conv(gen.convs[2 * j], out, conv_codes[:, 2 * j + 1], noises[2 * j + 1])
        out = styled_conv(gen.convs[2 * j + 1], out, conv_codes[:, 2 * j + 2], noises[2 * j + 2])
        skip = to_rgb(gen.to_rgbs[j], out, rgb_codes[:, j + 1], skip)
    return skip


def render(gen: Generator, w: torch.Tensor, t: torch.Tensor | None = None, dense: bool = True) -> torch.Tensor:
    """The official decoder call `decoder([w], input_is_latent=True, randomize_noise=False, txt_embed=t)`;
    `dense=False` runs the generator's own (official, grouped) formulation."""
    if not dense:
        return gen(w, t)
    conv_codes, rgb_codes = gen.split_wplus(w)
    if t is not None:
        conv_codes = gen.remap(conv_codes, t)
    return synthesis(gen, conv_codes, rgb_codes)
