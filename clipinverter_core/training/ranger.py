"""The optimisers of the coaches: Ranger (their default) and Adam (`optim_name='adam'`).

Ranger as the official adapter/training/ranger.py (lessw2020's version 20.4.11) computes it, per parameter p
with gradient g at step t (betas (0.95, 0.999), eps 1e-5, no weight decay):
    g <- g - mean(g over every dim but the first)      (gradient centralisation, only if p.dim() > 1)
    m <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g^2
    N = N_max - 2 t b2^t / (1 - b2^t),  N_max = 2 / (1 - b2) - 1
    N > 5:  p <- p - lr r_t / (1 - b1^t) * m / (sqrt(v) + eps),
            r_t = sqrt((1 - b2^t) (N - 4)(N - 2) N_max / ((N_max - 4) N (N_max - 2)))
    else:   p <- p - lr / (1 - b1^t) * m                  (RAdam's un-rectified warm-up: momentum SGD)
    every k = 6 steps (Lookahead): slow <- slow + 0.5 (p - slow); p <- slow   (slow starts at p's first value)
pytorch-optimizer's Ranger computes exactly these updates with `degenerated_to_sgd=True` (the official
warm-up step; its default skips the update), in the parameters' dtype, so float64 works; ranger_golden.npz
checks it step for step. (N never equals 5 at an integer t, so its `>=` is the official `>`.)
"""
from __future__ import annotations

import torch
from pytorch_optimizer import Ranger as _Ranger

BETAS = (0.95, 0.999)
EPS = 1e-5
LOOKAHEAD_K = 6
LOOKAHEAD_ALPHA = 0.5
N_SMA_THRESHOLD = 5


class Ranger(_Ranger):
    """RAdam + Lookahead + gradient centralisation with the official settings (see the module docstring)."""

    def __init__(self, params, lr: float = 1e-3):
        super().__init__(params, lr=lr, betas=BETAS, alpha=LOOKAHEAD_ALPHA, k=LOOKAHEAD_K,
                         n_sma_threshold=N_SMA_THRESHOLD, degenerated_to_sgd=True, weight_decay=0.0,
                         use_gc=True, gc_conv_only=False, eps=EPS)


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """The coaches' configure_optimizers: 'ranger' (default) or 'adam' (torch.optim.Adam, its defaults)."""
    if name == "ranger":
        return Ranger(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"optimizer must be 'ranger' or 'adam', got {name!r}")
