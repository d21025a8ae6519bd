"""e4e encoder: an IR-SE50 backbone with three feature taps and FPN "map2style" heads.

Names follow `e4e_ffhq_encode.pt` after stripping 'encoder.' (`input_layer`, `body.N`, `styles.N`,
`latlayer1`, `latlayer2`).

    taps:  c1 = body unit 6 (128 ch, 64x64), c2 = unit 20 (256 ch, 32x32), c3 = unit 23 (512 ch, 16x16)
    heads: row 0 = styles[0](c3); row i = row 0 + styles[i](f_i) with f_i = c3 (i < 3),
           p2 = up(c3) + latlayer1(c2) (3 <= i < 7), p1 = up(p2) + latlayer2(c1) (i >= 7)
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import EqualLinear

# IR-SE50: (in_channel, depth, number of units) per stage; the first unit of each stage has stride 2.
IR_SE50_STAGES = ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))
SE_REDUCTION = 16
TAP_UNITS = (6, 20, 23)            # c1, c2, c3
COARSE_END, MEDIUM_END = 3, 7      # rows [0, 3) read c3, [3, 7) read p2, the rest read p1
HEAD_LRELU_SLOPE = 0.01            # nn.LeakyReLU() default, as in the official heads


class Features(NamedTuple):
    """The three backbone taps, finest first, as the official code orders them."""
    c1: torch.Tensor
    c2: torch.Tensor
    c3: torch.Tensor


class SEModule(nn.Module):
    def __init__(self, channels: int, reduction: int = SE_REDUCTION):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class BottleneckIRSE(nn.Module):
    def __init__(self, in_channel: int, depth: int, stride: int):
        super().__init__()
        self.stride = stride
        if in_channel != depth:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channel, depth, 1, stride, bias=False),
                                                nn.BatchNorm2d(depth))
        else:
            self.shortcut_layer = None  # MaxPool2d(1, stride) in the official code: plain subsampling
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channel),
            nn.Conv2d(in_channel, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            SEModule(depth),
        )

    def forward(self, x):
        if self.shortcut_layer is None:
            shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        else:
            shortcut = self.shortcut_layer(x)
        return self.res_layer(x) + shortcut


class GradualStyleBlock(nn.Module):
    """Stride-2 3x3 convs with LeakyReLU(0.01) from `spatial` down to 1x1, then an equalised linear."""

    def __init__(self, channels: int, spatial: int):
        super().__init__()
        layers = []
        for _ in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.LeakyReLU(HEAD_LRELU_SLOPE)]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(channels, channels)
        self.channels = channels

    def forward(self, x):
        return self.linear(self.convs(x).reshape(-1, self.channels))


def _upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=y.shape[2:], mode="bilinear", align_corners=True) + y


class Encoder4Editing(nn.Module):
    def __init__(self, n_latent: int):
        super().__init__()
        self.n_latent = n_latent
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units = []
        for in_channel, depth, n in IR_SE50_STAGES:
            units.append(BottleneckIRSE(in_channel, depth, 2))
            units += [BottleneckIRSE(depth, depth, 1) for _ in range(n - 1)]
        self.body = nn.Sequential(*units)
        spatial = lambda i: 16 if i < COARSE_END else 32 if i < MEDIUM_END else 64  # noqa: E731
        self.styles = nn.ModuleList([GradualStyleBlock(512, spatial(i)) for i in range(n_latent)])
        self.latlayer1 = nn.Conv2d(256, 512, 1)
        self.latlayer2 = nn.Conv2d(128, 512, 1)

    def backbone(self, x: torch.Tensor) -> Features:
        """x: (B, 3, 256, 256) in [-1, 1] -> the three taps."""
        x = self.input_layer(x)
        taps = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in TAP_UNITS:
                taps.append(x)
        return Features(*taps)

    def heads(self, feats: Features) -> torch.Tensor:
        """E_s: the three maps -> (B, n_latent, 512), without latent_avg."""
        c1, c2, c3 = feats
        w0 = self.styles[0](c3)
        rows = [w0]
        f = c3
        for i in range(1, self.n_latent):
            if i == COARSE_END:
                p2 = f = _upsample_add(c3, self.latlayer1(c2))
            elif i == MEDIUM_END:
                f = _upsample_add(p2, self.latlayer2(c1))
            rows.append(w0 + self.styles[i](f))
        return torch.stack(rows, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Features]:
        feats = self.backbone(x)
        return self.heads(feats), feats
