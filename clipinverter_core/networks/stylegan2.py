"""StyleGAN2 generator (rosinality layout) with CLIPInverter's CLIPRemapper.

Module names follow the checkpoints everyone holds (`convs.N.conv.weight`, `to_rgbs.N`, `noises.noise_N`,
`affine_mlps.N`, `lambdas.N`), so official state dicts load with strict=True.

W+ rows and the layers they drive (n_latent = 2*log2(size) - 2):
    conv1 <- row 0; to_rgb1 <- row 1; convs[k] <- row k+1; to_rgbs[j] <- row 2j+3.
The synthesis takes per-layer codes: `conv_codes` (B, n_conv, 512) for conv1 and convs (n_conv = n_latent - 1)
and `rgb_codes` (B, n_rgb, 512) for to_rgb1 and to_rgbs (n_rgb = log2(size) - 1). The CLIPRemapper rewrites
conv codes 1.. (never conv1, never a ToRGB).

Two ways to compute the same synthesis:
- as loaded: the official formulation (per-sample modulated weights in a grouped convolution, the blur as
  single-plane convolutions, bias, noise and activation as separate ops). It is the reference.
- after `Generator.fuse()` (once, after the weights are loaded): the fast path. Batch 1 folds style,
  demodulation, the activation gain and the bias into the conv weights (one dense conv, no grouped conv);
  larger batches scale the input by the style and the output by the demodulation around one dense conv
  with the shared weight. The blur is a depthwise conv (polyphase for the RGB upsampling), noise and
  activation run in place, and the feature maps are channels_last. `fuse(low_precision=...)` runs the
  layers from 64x64 up in bf16/fp16 with float32 styles and RGB sums. The parameters keep their values
  (some are re-laid out channels_last), so state dicts still save and load.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import fused_leaky_relu, upfirdn2d
from ..ops.upfirdn2d import prepare_taps
from ..ops.bias_act import LRELU_GAIN, LRELU_SLOPE
from .layers import EqualLinear, PixelNorm

STYLE_DIM = 512
N_MLP = 8                     # mapping network depth
LR_MLP = 0.01                 # mapping network learning-rate multiplier
BLUR_KERNEL = (1, 3, 3, 1)    # binomial FIR filter of every up/down-sampling step
DEMOD_EPS = 1e-8
REMAP_LAMBDA_SCALE = 0.9      # l_k = 0.9 * lambda_k, the official constant
LOW_PRECISION_FROM = 64       # fused bf16/fp16: layers at this resolution and above compute in low precision
CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}  # multiplier 2


def n_latent_for(size: int) -> int:
    return 2 * int(math.log2(size)) - 2


def size_for(n_latent: int) -> int:
    return 2 ** ((n_latent + 2) // 2)


def make_kernel(k=BLUR_KERNEL, gain: float = 1.0) -> torch.Tensor:
    k = torch.tensor(k, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum() * gain


class Blur(nn.Module):
    up = 1

    def __init__(self, pad: tuple[int, int], gain: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", make_kernel(gain=gain))
        self.register_buffer("taps", None, persistent=False)  # the fast path's weights (`fuse`)
        self.pad = pad
        self.impl = "ref"

    def fuse(self) -> None:
        """The fast path, with its filter weights computed once (a buffer: it moves with the module)."""
        self.impl, self.taps = "fast", prepare_taps(self.kernel, self.up, self.pad)

    def forward(self, x):
        return upfirdn2d(x, self.kernel, up=self.up, pad=self.pad, impl=self.impl, taps=self.taps)


class Upsample(Blur):
    """x2 upsampling of the RGB skip: zero insertion and the blur kernel (gain 4 keeps the mean)."""
    up = 2

    def __init__(self):
        p = len(BLUR_KERNEL) - self.up
        super().__init__(((p + 1) // 2 + self.up - 1, p // 2), gain=self.up ** 2)


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

    def fuse(self) -> None:
        """Precomputes sum_k weight^2 per (in, out) channel pair: demodulation becomes a (B, C) @ (C, O)
        product of squared (scaled) styles, with no per-sample weight tensor."""
        w = self.weight[0].float()
        self.register_buffer("weight_sq", w.pow(2).sum([2, 3]).t().contiguous().to(self.weight.dtype),
                             persistent=False)
        # Same values, stored in the layout the channels_last convolution reads (the conv would otherwise copy
        # the weight on every call): channels_last for conv2d, and for conv_transpose2d's (in, out, k, k) view.
        cl = torch.channels_last
        if self.upsample:
            self.weight.data = self.weight.data[0].transpose(0, 1).contiguous(memory_format=cl).transpose(0, 1)[None]
        else:
            self.weight.data = self.weight.data[0].contiguous(memory_format=cl)[None]

    def fused_conv(self, x: torch.Tensor, style: torch.Tensor, bias: torch.Tensor | None = None,
                   gain: float = 1.0) -> torch.Tensor:
        """gain * (modulated, demodulated conv of x + bias); bias (O,) or None."""
        b = x.shape[0]
        s = self.modulation.fused(style) * self.scale                          # (B, C): style and weight scale
        if self.demodulate:
            d = torch.rsqrt(s.square() @ self.weight_sq + DEMOD_EPS) * gain    # (B, O)
        else:
            d = s.new_full((b, self.out_channel), gain)
        dt = x.dtype  # the compute dtype; styles and demodulation stay in the parameters' dtype
        bias = (bias * gain).to(dt) if bias is not None else None
        weight = self.weight[0]
        if b == 1:  # everything folds into the one weight: a plain dense convolution
            weight = (weight * (s.view(1, -1, 1, 1) * d.view(-1, 1, 1, 1))).to(dt)
            if not self.upsample:
                return F.conv2d(x, weight, bias, padding=self.padding)
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
            return out.add_(bias.view(1, -1, 1, 1)) if bias is not None else out
        x = x * s.view(b, -1, 1, 1).to(dt)  # input scaling: one dense conv with the shared weight for the batch
        weight = weight.to(dt)
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        d = d.view(b, -1, 1, 1).to(dt)
        return torch.addcmul(bias.view(1, -1, 1, 1), out, d, out=out) if bias is not None else out.mul_(d)


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


def _remapper_mlp() -> nn.Sequential:
    """M_k: Linear -> ReLU -> Linear -> LayerNorm -> ReLU -> Linear (indices 0, 2, 3, 5 hold weights)."""
    d = STYLE_DIM
    return nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d), nn.LayerNorm(d), nn.ReLU(), nn.Linear(d, d))


class Generator(nn.Module):
    """StyleGAN2 generator (channel multiplier 2) plus the CLIPRemapper (`affine_mlps`, `lambdas`)."""

    def __init__(self, size: int, remapper: bool = True):
        super().__init__()
        log_size = int(math.log2(size))
        if 2 ** log_size != size or not 4 < size <= 1024:
            raise ValueError(f"StyleGAN size must be a power of two from 8 to 1024, got {size}")
        self.size, self.log_size = size, log_size
        self.n_latent = n_latent_for(size)
        self.n_conv = self.n_latent - 1
        self.n_rgb = log_size - 1
        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(STYLE_DIM, STYLE_DIM, lr_mul=LR_MLP, activation=True)
                                                  for _ in range(N_MLP)])
        self.input = ConstantInput(CHANNELS[4])
        self.conv1 = StyledConv(CHANNELS[4], CHANNELS[4])
        self.to_rgb1 = ToRGB(CHANNELS[4], upsample=False)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.n_conv):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.empty(1, 1, res, res))
        in_channel = CHANNELS[4]
        for i in range(3, log_size + 1):
            out_channel = CHANNELS[2 ** i]
            self.convs.append(StyledConv(in_channel, out_channel, upsample=True))
            self.convs.append(StyledConv(out_channel, out_channel))
            self.to_rgbs.append(ToRGB(out_channel))
            in_channel = out_channel
        self.has_remapper = remapper
        if remapper:
            self.affine_mlps = nn.ModuleList([_remapper_mlp() for _ in range(self.n_conv - 1)])
            self.lambdas = nn.ParameterList([nn.Parameter(torch.empty(())) for _ in range(self.n_conv - 1)])

        self.fused = False
        self.low_precision, self.low_precision_from = None, LOW_PRECISION_FROM

    def fuse(self, low_precision: torch.dtype | None = None, low_precision_from: int = LOW_PRECISION_FROM) -> "Generator":
        """Switches to the fast path (see the module docstring). Call once, after loading the weights; the
        parameters are not changed, only derived buffers are added.

        `low_precision` (e.g. torch.bfloat16): the feature maps and conv weights of the layers at resolution
        `low_precision_from` and above run in that dtype; codes, styles, demodulation, the low resolutions
        and the RGB sums stay in the parameters' dtype (StyleGAN3 does the same for fp16)."""
        self.low_precision, self.low_precision_from = low_precision, low_precision_from
        for m in self.modules():
            if isinstance(m, ModulatedConv2d):
                m.fuse()
            if isinstance(m, Blur):  # and Upsample
                m.fuse()
            if isinstance(m, (StyledConv, ToRGB, Generator)):
                m.fused = True
        if self.has_remapper:
            self._stack_remapper()
        return self

    STACKED = tuple(f"remap_{kind}_{i}" for i in (0, 2, 5) for kind in ("weight", "bias")) + \
        ("remap_norm_weight", "remap_norm_bias")

    def _apply(self, fn, recurse=True):
        """Module.to(), .cuda(), .half() ...: the stacked remapper buffers are dropped, the parameters moved
        (or cast), and the stacks built again from them, so the MLPs' parameters are views of the stacks
        again. Moved on their own, stacks and parameters would be two copies on the new device."""
        stacked = [name for name in self.STACKED if self._buffers.get(name) is not None]
        for name in stacked:
            del self._buffers[name]
        super()._apply(fn, recurse)
        if stacked:
            self._stack_remapper()
        return self

    def _stack_remapper(self) -> None:
        """The remapper's MLPs as stacked weights (n, in, out) for batched products; the MLPs' parameters
        become views of them (no second copy). The LayerNorms' stacks are copies (16 x 2 x 512 values)."""
        for i in (0, 2, 5):  # the Linear layers of M_k
            layers = [mlp[i] for mlp in self.affine_mlps]
            weight = torch.stack([m.weight for m in layers])                          # (n, out, in)
            bias = torch.stack([m.bias for m in layers])[:, None]                     # (n, 1, out)
            for k, m in enumerate(layers):
                m.weight.data, m.bias.data = weight[k], bias[k, 0]
            self.register_buffer(f"remap_weight_{i}", weight, persistent=False)
            self.register_buffer(f"remap_bias_{i}", bias, persistent=False)
        norms = [mlp[3] for mlp in self.affine_mlps]
        self.register_buffer("remap_norm_weight", torch.stack([m.weight for m in norms])[:, None], persistent=False)
        self.register_buffer("remap_norm_bias", torch.stack([m.bias for m in norms])[:, None], persistent=False)
        self.remap_norm_eps = norms[0].eps

    def _remapper_mlps(self, t: torch.Tensor) -> torch.Tensor:
        """All M_k(t) at once: (n, B, 512)."""
        lin = lambda i, h: torch.baddbmm(getattr(self, f"remap_bias_{i}"), h,  # noqa: E731
                                         getattr(self, f"remap_weight_{i}").transpose(1, 2))
        h = F.relu_(lin(0, t.expand(len(self.affine_mlps), *t.shape)))
        h = F.layer_norm(lin(2, h), (STYLE_DIM,), eps=self.remap_norm_eps)
        h = F.relu_(torch.addcmul(self.remap_norm_bias, h, self.remap_norm_weight))
        return lin(5, h)

    # --- codes -----------------------------------------------------------------------------------------
    def split_wplus(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """W+ (B, n_latent, 512) -> (conv_codes (B, n_conv, 512), rgb_codes (B, n_rgb, 512))."""
        assert w.ndim == 3 and w.shape[1] == self.n_latent, (tuple(w.shape), self.n_latent)
        return w[:, :self.n_conv], w[:, 1::2]

    def remap(self, conv_codes: torch.Tensor, t: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        """CLIPRemapper: conv code k (k >= 1) <- (1 - l_k) * code_k + l_k * M_k(t), l_k = 0.9 * strength * lambda_k."""
        if not self.has_remapper:
            raise ValueError("this generator has no CLIPRemapper weights")
        assert t.shape[0] == conv_codes.shape[0], (tuple(t.shape), tuple(conv_codes.shape))
        assert conv_codes.ndim == 3 and conv_codes.shape[1] == self.n_conv, (tuple(conv_codes.shape), self.n_conv)
        if self.fused:
            lam = torch.stack(list(self.lambdas)).view(1, -1, 1) * (REMAP_LAMBDA_SCALE * strength)
            mapped = self._remapper_mlps(t).transpose(0, 1)                              # (B, n, 512)
            return torch.cat([conv_codes[:, :1], conv_codes[:, 1:] * (1 - lam) + mapped * lam], 1)
        rows = [conv_codes[:, 0]]
        for k, (mlp, lam) in enumerate(zip(self.affine_mlps, self.lambdas)):
            l_k = lam * REMAP_LAMBDA_SCALE * strength
            rows.append(conv_codes[:, k + 1] * (1 - l_k) + mlp(t) * l_k)
        return torch.stack(rows, 1)

    # --- synthesis -------------------------------------------------------------------------------------
    def synthesis(self, conv_codes: torch.Tensor, rgb_codes: torch.Tensor) -> torch.Tensor:
        """Renders per-layer codes with the stored noise buffers. Returns (B, 3, size, size), unclamped."""
        noises = [getattr(self.noises, f"noise_{i}") for i in range(self.n_conv)]
        x = self.input(conv_codes.shape[0])
        if self.fused:  # channels_last: the convolutions at high resolution and few channels run ~1.5x faster
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.conv1(x, conv_codes[:, 0], noises[0])
        skip = self.to_rgb1(out, rgb_codes[:, 0])
        for j in range(self.log_size - 2):
            up, same = self.convs[2 * j], self.convs[2 * j + 1]
            if self.fused and self.low_precision is not None and 2 ** (j + 3) >= self.low_precision_from:
                out = out.to(self.low_precision)
            out = up(out, conv_codes[:, 2 * j + 1], noises[2 * j + 1])
            out = same(out, conv_codes[:, 2 * j + 2], noises[2 * j + 2])
            skip = self.to_rgbs[j](out, rgb_codes[:, j + 1], skip)
        return skip.contiguous()

    def forward(self, w: torch.Tensor, t: torch.Tensor | None = None, remap_strength: float = 1.0):
        """W+ codes (and, for the CLIPRemapper, text embeddings t) -> image, as the official decoder call
        `decoder([w], input_is_latent=True, randomize_noise=False, truncation=1, txt_embed=t)`."""
        conv_codes, rgb_codes = self.split_wplus(w)
        if t is not None:
            conv_codes = self.remap(conv_codes, t, remap_strength)
        return self.synthesis(conv_codes, rgb_codes)
