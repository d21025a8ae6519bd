"""Small layers shared by the networks, named as in the official checkpoints."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import fused_leaky_relu

PIXELNORM_EPS = 1e-8


class PixelNorm(nn.Module):
    """Divides each position's vector (dim 1) by its root mean square."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x ** 2, dim=1, keepdim=True) + PIXELNORM_EPS)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: the stored weight is scaled by lr_mul/sqrt(in_dim)
    at run time, the bias by lr_mul. `activation=True` applies StyleGAN2's fused leaky ReLU."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, lr_mul: float = 1.0,
                 activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        self.bias = nn.Parameter(torch.empty(out_dim)) if bias else None
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight * self.scale
        bias = self.bias * self.lr_mul if self.bias is not None else None
        if self.activation:
            return fused_leaky_relu(F.linear(x, weight), bias)
        return F.linear(x, weight, bias)

    def fused(self, x: torch.Tensor) -> torch.Tensor:
        """The same map with the scale applied to the input, not to a copy of the weight (fast paths)."""
        bias = self.bias * self.lr_mul if self.bias is not None else None
        if self.activation:
            return fused_leaky_relu(F.linear(x * self.scale, self.weight), bias)
        return F.linear(x * self.scale, self.weight, bias)
