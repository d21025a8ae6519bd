"""Bias + leaky ReLU + gain: StyleGAN2's "fused_lrelu"."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2)  # keeps the activations' second moment after a leaky ReLU of slope 0.2


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor, negative_slope: float = LRELU_SLOPE,
                     gain: float = LRELU_GAIN) -> torch.Tensor:
    """leaky_relu(x + bias) * gain, with `bias` broadcast over dim 1 (channels)."""
    shape = [1, -1] + [1] * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape).to(x.dtype), negative_slope=negative_slope) * gain
