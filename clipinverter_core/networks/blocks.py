"""StyleGAN2's synthesis blocks around the modulated convolution: StyledConv (conv, noise, biased leaky ReLU),
ToRGB (a 1x1 conv onto the upsampled RGB skip) and the constant input, each in its official and its fused form."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import fused_leaky_relu
from ..ops.bias_act import LRELU_GAIN, LRELU_SLOPE
from .blur import Upsample
from .modconv import ModulatedConv2d


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1))

    def forward(self, x, noise):
        return x + self.weight * noise


class ConstantInput(nn.Module):
    def __init__(self, channel: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.empty(1, channel, size, size))

    def forward(self, batch: int):
        return self.input.repeat(batch, 1, 1, 1)


class FusedLeakyReLU(nn.Module):
    def __init__(self, channel: int):
        super().__init__()
        self.bias = nn.Parameter(torch.empty(channel))

    def forward(self, x):
        return fused_leaky_relu(x, self.bias)


class StyledConv(nn.Module):
    def __init__(self, in_channel: int, out_channel: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, 3, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)
        self.fused = False

    def forward(self, x, style, noise):
        if self.fused:
            out = self.conv.fused_conv(x, style, self.activate.bias, LRELU_GAIN)   # lrelu(g*z) = g*lrelu(z)
            out.add_((noise * (self.noise.weight * LRELU_GAIN)).to(out.dtype))
            return F.leaky_relu_(out, LRELU_SLOPE)
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    def __init__(self, in_channel: int, upsample: bool = True):
        super().__init__()
        if upsample:
            self.upsample = Upsample()
        self.conv = ModulatedConv2d(in_channel, 3, 1, demodulate=False)
        self.bias = nn.Parameter(torch.empty(1, 3, 1, 1))
        self.fused = False

    def forward(self, x, style, skip=None):
        if self.fused:
            out = self.conv.fused_conv(x, style, self.bias.view(-1)).to(style.dtype)  # RGB sums in full precision
            return out.add_(self.upsample(skip)) if skip is not None else out
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out
