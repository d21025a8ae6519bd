"""StyleGAN2 generator (rosinality layout) with CLIPInverter's CLIPRemapper: the mapping network, the synthesis
layer by layer, and the switch to the fused inference path.

Module names follow the checkpoints everyone holds (`convs.N.conv.weight`, `to_rgbs.N`, `noises.noise_N`,
`affine_mlps.N`, `lambdas.N`), so official state dicts load with strict=True. The layers are in blur.py,
modconv.py and blocks.py, the CLIPRemapper in remapper.py.

W+ rows and the layers they drive (n_latent = 2*log2(size) - 2):
    conv1 <- row 0; to_rgb1 <- row 1; convs[k] <- row k+1; to_rgbs[j] <- row 2j+3.
The synthesis takes per-layer codes: `conv_codes` (B, n_conv, 512) for conv1 and convs (n_conv = n_latent - 1)
and `rgb_codes` (B, n_rgb, 512) for to_rgb1 and to_rgbs (n_rgb = log2(size) - 1). The CLIPRemapper rewrites
conv codes 1.. (never conv1, never a ToRGB).

Two ways to compute the same synthesis:
- as loaded: the official formulation (per-sample modulated weights in a grouped convolution, the blur as
  single-plane convolutions, bias, noise and activation as separate ops). It is the reference.
- after `Generator.fuse()` (once, after the weights are loaded): the fast path. The modulated convolutions run
  as dense convolutions (modconv.py), the blur is a depthwise conv (polyphase for the RGB upsampling), noise and
  activation run in place, and the feature maps are channels_last. `fuse(low_precision=...)` runs the
  layers from 64x64 up in bf16/fp16 with float32 styles and RGB sums. The parameters keep their values
  (some are re-laid out channels_last), so state dicts still save and load.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .blocks import ConstantInput, StyledConv, ToRGB
from .blur import Blur, Upsample, make_kernel
from .layers import EqualLinear, PixelNorm
from .modconv import DEMOD_EPS, STYLE_DIM, ModulatedConv2d
from .remapper import CLIPRemapper

__all__ = ["Generator", "n_latent_for", "size_for", "channels_of", "CHANNELS", "STYLE_DIM", "DEMOD_EPS",
           "LOW_PRECISION_FROM", "Blur", "Upsample", "make_kernel", "ModulatedConv2d", "StyledConv", "ToRGB"]

N_MLP = 8                     # mapping network depth
LR_MLP = 0.01                 # mapping network learning-rate multiplier
LOW_PRECISION_FROM = 64       # fused bf16/fp16: layers at this resolution and above compute in low precision
CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}  # multiplier 2


def n_latent_for(size: int) -> int:
    return 2 * int(math.log2(size)) - 2


def size_for(n_latent: int) -> int:
    return 2 ** ((n_latent + 2) // 2)


def channels_of(sd: dict, size: int) -> dict[int, int]:
    """The feature channels per resolution of a generator state dict: CHANNELS for the released networks; a
    stand-in may be narrower (weights.standin). Read from the shapes of `input.input` and of the first conv of each
    resolution; a missing or malformed tensor keeps CHANNELS there, and strict loading then says what is wrong."""
    channels = dict(CHANNELS)
    first = {4: "input.input"}
    first.update({2 ** i: f"convs.{2 * (i - 3)}.conv.weight" for i in range(3, int(math.log2(size)) + 1)})
    for res, key in first.items():
        t = sd.get(key)
        if t is not None and t.ndim in (4, 5):
            channels[res] = int(t.shape[1])
    return channels


class Generator(CLIPRemapper, nn.Module):
    """StyleGAN2 generator (channel multiplier 2) plus the CLIPRemapper (`affine_mlps`, `lambdas`). `channels`
    (resolution -> feature channels) defaults to the released networks' CHANNELS; channels_of reads a state dict's."""

    def __init__(self, size: int, remapper: bool = True, channels: dict[int, int] | None = None):
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
        ch = CHANNELS if channels is None else channels
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4])
        self.to_rgb1 = ToRGB(ch[4], upsample=False)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.n_conv):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.empty(1, 1, res, res))
        in_channel = ch[4]
        for i in range(3, log_size + 1):
            out_channel = ch[2 ** i]
            self.convs.append(StyledConv(in_channel, out_channel, upsample=True))
            self.convs.append(StyledConv(out_channel, out_channel))
            self.to_rgbs.append(ToRGB(out_channel))
            in_channel = out_channel
        self.has_remapper = remapper
        if remapper:
            self._add_remapper(self.n_conv - 1)

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

    def refresh(self) -> None:
        """After the synthesis weights changed in place (tuned weights, ComfyUI patches): derives the fused
        form's buffers from them again. Nothing to do on the official form."""
        if self.fused:
            for m in self.modules():
                if isinstance(m, ModulatedConv2d):
                    m.refresh()

    # --- codes -----------------------------------------------------------------------------------------
    def split_wplus(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """W+ (B, n_latent, 512) -> (conv_codes (B, n_conv, 512), rgb_codes (B, n_rgb, 512))."""
        assert w.ndim == 3 and w.shape[1] == self.n_latent, (tuple(w.shape), self.n_latent)
        return w[:, :self.n_conv], w[:, 1::2]

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
