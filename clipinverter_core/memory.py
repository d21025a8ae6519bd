"""How much working memory one batch item of the edit needs, from the dtypes each network computes in.

Used to size batch chunks (the nodes ask ComfyUI for that much free memory and chunk by it). An estimate of
the peak of live feature maps, not a measurement; the chunking halves on out-of-memory errors anyway.

- Synthesis: at each resolution step r (8 .. size) the input map (C(r/2) channels at (r/2)^2), about three maps of
  C(r) channels at r^2 (transposed-conv output, blur, same-resolution conv) and the RGB skip are alive.
  Maps from LOW_PRECISION_FROM (64 px) up are in the precision's dtype on the fast path; below that, and
  everything on the reference path, in the generator's dtype (float32 weights, maps below 64 px and the RGB
  sums in fast bf16/fp16).
  At 1024 in float32 that is ~470 MB; BENCHMARKS.md measured ~390 MiB per item (CPU, fast path, batch 8).
- Encoder: the backbone's first stages hold a few 64-channel maps at the 256x256 input size, in the encoder's
  dtype (float32 in bf16 mode, where the encoder stays float32).
"""
from __future__ import annotations

import math

import torch

from .images import ENCODER_SIZE
from .networks.stylegan2 import CHANNELS

MAPS_PER_STEP = 3          # transposed-conv output, blur output, same-resolution conv output
BACKBONE_CHANNELS = 64     # IR-SE50's input layer and first stage
BACKBONE_LIVE_MAPS = 4     # input layer output, residual branch, shortcut, block output
RGB_CHANNELS = 3


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def synthesis_bytes(size: int, gen_dtype: torch.dtype, low_precision: torch.dtype | None,
                    low_precision_from: int) -> int:
    """Peak bytes of live maps of one item's synthesis at StyleGAN size `size`."""
    peak = 0
    for k in range(3, int(math.log2(size)) + 1):
        r = 2 ** k
        dt = low_precision if low_precision is not None and r >= low_precision_from else gen_dtype
        maps = (CHANNELS[r // 2] * (r // 2) ** 2 + MAPS_PER_STEP * CHANNELS[r] * r ** 2) * _itemsize(dt)
        skip = RGB_CHANNELS * r ** 2 * _itemsize(gen_dtype)  # the RGB sums: float32 on the fast mixed path
        peak = max(peak, maps + 2 * skip)
    return peak


def encoder_bytes(enc_dtype: torch.dtype) -> int:
    """Peak bytes of live maps of one item in the encoder's backbone."""
    return BACKBONE_LIVE_MAPS * BACKBONE_CHANNELS * ENCODER_SIZE ** 2 * _itemsize(enc_dtype)


def item_bytes(inverter) -> int:
    """Working memory of one batch item of `inverter` (a CLIPInverter), in bytes: the larger of its stages."""
    stages = [0]
    if inverter.encoder is not None:
        stages.append(encoder_bytes(inverter.enc_dtype))
    gen = inverter.generator
    if gen is not None:
        low = gen.low_precision if gen.fused else None
        stages.append(synthesis_bytes(inverter.size, inverter.gen_dtype, low, gen.low_precision_from))
    return max(stages)
