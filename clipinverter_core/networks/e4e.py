"""e4e encoder: an IR-SE50 backbone with three feature taps and FPN "map2style" heads.

Names follow `e4e_ffhq_encode.pt` after stripping 'encoder.' (`input_layer`, `body.N`, `styles.N`,
`latlayer1`, `latlayer2`).

    taps:  c1 = body unit 6 (128 ch, 64x64), c2 = unit 20 (256 ch, 32x32), c3 = unit 23 (512 ch, 16x16)
    heads: row 0 = styles[0](c3); row i = row 0 + styles[i](f_i) with f_i = c3 (i < 3),
           p2 = up(c3) + latlayer1(c2) (3 <= i < 7), p1 = up(p2) + latlayer2(c1) (i >= 7)

As loaded, the modules compute the official formulation (unfused BatchNorm, one head at a time): the
reference. `Encoder4Editing.fuse()` (once, after loading) switches to the fast path: the BatchNorms that
follow a convolution are folded into it, the one before a padded convolution becomes one affine op, and the
heads' bilinear upsampling runs as two small matrix products. The heads still run one at a time on their own
weights: one wide conv for the heads that share a map measured slower on CPU (BENCHMARKS.md). The edit runs
the inversion's and the edit's head passes as one batch. The checkpoint's parameters are left as loaded.
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
C3_C2_SIZES, C2_C1_SIZES = (16, 32), (32, 64)  # map sides of the taps for the 256x256 input: c3 -> c2 -> c1
STYLE_CHANNELS = 512               # the FPN maps the heads read, and each head's output (a W+ row)


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


def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Inference BatchNorm as y = x * scale + shift (float32)."""
    scale = bn.weight.float() * torch.rsqrt(bn.running_var.float() + bn.eps)
    return scale, bn.bias.float() - bn.running_mean.float() * scale


def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, fmt=torch.channels_last) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of conv followed by bn, as one conv (computed in float32, cast back)."""
    scale, shift = _bn_scale_shift(bn)
    w = conv.weight.float() * scale.view(-1, 1, 1, 1)
    b = shift if conv.bias is None else shift + conv.bias.float() * scale
    return w.to(conv.weight.dtype).contiguous(memory_format=fmt), b.to(conv.weight.dtype)


def channels_last_weights(module: nn.Module, fmt=torch.channels_last) -> None:
    """Stores every conv weight of `module` channels_last (same values): a channels_last convolution would
    otherwise copy its weight to that layout on every call."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.data = m.weight.data.contiguous(memory_format=fmt)


def ir_se50_trunk() -> tuple[nn.Sequential, nn.Sequential]:
    """The IR-SE50 input layer and body: e4e's backbone and ArcFace's trunk (the same names in both checkpoints)."""
    input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
    units = []
    for in_channel, depth, n in IR_SE50_STAGES:
        units.append(BottleneckIRSE(in_channel, depth, 2))
        units += [BottleneckIRSE(depth, depth, 1) for _ in range(n - 1)]
    return input_layer, nn.Sequential(*units)


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

        self.fused = False

    def fuse(self, fmt=torch.channels_last) -> None:
        bn_in, conv1, prelu, conv2, bn_out, _ = self.res_layer
        scale, shift = _bn_scale_shift(bn_in)
        dtype = conv1.weight.dtype
        self.register_buffer("in_scale", scale.view(1, -1, 1, 1).to(dtype), persistent=False)
        self.register_buffer("in_shift", shift.view(1, -1, 1, 1).to(dtype), persistent=False)
        channels_last_weights(conv1, fmt)
        w, b = _fold_bn(conv2, bn_out, fmt)
        self.register_buffer("conv2_weight", w, persistent=False)
        self.register_buffer("conv2_bias", b, persistent=False)
        if self.shortcut_layer is not None:
            w, b = _fold_bn(*self.shortcut_layer, fmt)
            self.register_buffer("shortcut_weight", w, persistent=False)
            self.register_buffer("shortcut_bias", b, persistent=False)
        self.fused = True

    def forward(self, x):
        if self.fused:
            return self._forward_fused(x)
        if self.shortcut_layer is None:
            shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        else:
            shortcut = self.shortcut_layer(x)
        return self.res_layer(x) + shortcut

    def _forward_fused(self, x):
        _, conv1, prelu, conv2, _, se = self.res_layer
        if self.shortcut_layer is None:
            shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        else:
            shortcut = F.conv2d(x, self.shortcut_weight, self.shortcut_bias, self.stride)
        r = torch.addcmul(self.in_shift, x, self.in_scale)  # BatchNorm before a zero-padded conv: not foldable
        r = prelu(conv1(r))
        r = se(F.conv2d(r, self.conv2_weight, self.conv2_bias, self.stride, 1))
        return r.add_(shortcut)


class GradualStyleBlock(nn.Module):
    """Stride-2 3x3 convs with LeakyReLU(0.01) from `spatial` down to 1x1, then an equalised linear. The convs are
    `width` wide (the released heads: `channels`, 512; a stand-in's may be narrower), the linear maps back to
    `channels`."""

    def __init__(self, channels: int, spatial: int, width: int | None = None):
        super().__init__()
        width = channels if width is None else width
        layers = []
        for i in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(channels if i == 0 else width, width, 3, stride=2, padding=1),
                       nn.LeakyReLU(HEAD_LRELU_SLOPE)]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(width, channels)
        self.width = width

    def forward(self, x):
        return self.linear(self.convs(x).reshape(-1, self.width))


def _upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=y.shape[2:], mode="bilinear", align_corners=True) + y


def interp_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) float32: bilinear interpolation along one axis with align_corners=True, as a matrix."""
    pos = torch.arange(n_out, dtype=torch.float64) * ((n_in - 1) / max(n_out - 1, 1))
    lo = pos.floor().clamp(max=max(n_in - 2, 0)).long()
    frac = pos - lo
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    m[rows, lo] = 1 - frac
    if n_in > 1:
        m[rows, lo + 1] += frac
    return m.float()


def _upsample_add_mm(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The same sum for square maps, the (separable) bilinear upsampling as two small matrix products with
    a = interp_matrix(in, out): on a 2-core CPU, F.interpolate of a (2, 512, 32, 32) NCHW map took 25-60 ms,
    the products ~1.6 ms (relative L2 ~1e-6)."""
    return torch.matmul(torch.matmul(a, x), a.t()).add_(y)


def head_width_of(sd: dict) -> int | None:
    """The style heads' conv width in an encoder state dict: None for the released 512 (or when the key is missing:
    strict loading then says what is wrong), a stand-in's narrower width otherwise (weights.standin)."""
    t = sd.get("styles.0.convs.0.weight")
    return None if t is None or t.ndim != 4 or t.shape[0] == STYLE_CHANNELS else int(t.shape[0])


class Encoder4Editing(nn.Module):
    """`head_width`: the style heads' conv width, None for the released networks' 512 (head_width_of reads it)."""

    def __init__(self, n_latent: int, head_width: int | None = None):
        super().__init__()
        self.n_latent = n_latent
        self.input_layer, self.body = ir_se50_trunk()
        spatial = lambda i: 16 if i < COARSE_END else 32 if i < MEDIUM_END else 64  # noqa: E731
        self.styles = nn.ModuleList([GradualStyleBlock(STYLE_CHANNELS, spatial(i), head_width)
                                     for i in range(n_latent)])
        self.latlayer1 = nn.Conv2d(256, STYLE_CHANNELS, 1)
        self.latlayer2 = nn.Conv2d(128, STYLE_CHANNELS, 1)

        self.fused = False

    def fuse(self, backbone_format=torch.contiguous_format) -> "Encoder4Editing":
        """Switches to the fast path (see the module docstring). Call once, after loading the weights.

        The backbone runs NCHW by default: on an idle 2-core CPU, channels_last made it ~20% slower
        (BENCHMARKS.md). The heads keep their own weights: nothing is copied for them."""
        self.backbone_format = backbone_format
        w, b = _fold_bn(self.input_layer[0], self.input_layer[1], backbone_format)
        self.register_buffer("input_weight", w, persistent=False)
        self.register_buffer("input_bias", b, persistent=False)
        for unit in self.body:
            unit.fuse(backbone_format)
        dtype, device = self.latlayer1.weight.dtype, self.latlayer1.weight.device
        for name, (n_in, n_out) in (("up_c3", C3_C2_SIZES), ("up_p2", C2_C1_SIZES)):
            self.register_buffer(name, interp_matrix(n_in, n_out).to(device, dtype), persistent=False)
        self.fused = True
        return self

    def backbone(self, x: torch.Tensor) -> Features:
        """x: (B, 3, 256, 256) in [-1, 1] -> the three taps."""
        if self.fused:
            x = x.contiguous(memory_format=self.backbone_format)
            x = self.input_layer[2](F.conv2d(x, self.input_weight, self.input_bias, 1, 1))
        else:
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
                p2 = f = self._top_down(c3, self.latlayer1(c2), "up_c3")
            elif i == MEDIUM_END:
                f = self._top_down(p2, self.latlayer2(c1), "up_p2")
            rows.append(w0 + self.styles[i](f))
        return torch.stack(rows, 1)

    def _top_down(self, x: torch.Tensor, y: torch.Tensor, matrix: str) -> torch.Tensor:
        """The FPN step up(x) + y: F.interpolate as loaded, the matrix products (buffer `matrix`) once fused."""
        return _upsample_add_mm(x, y, getattr(self, matrix)) if self.fused else _upsample_add(x, y)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Features]:
        feats = self.backbone(x)
        return self.heads(feats), feats
