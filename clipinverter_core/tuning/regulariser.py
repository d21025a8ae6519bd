"""PTI's locality regulariser (criteria/localitly_regulizer.py, STIT's the same): tuning must not move the
generator's images away from the pivot.

z ~ N(0, I) (numpy randn(1, 512)); w_s = G.mapping(z, psi 0.5) = w_avg + 0.5 * (style(z) - w_avg) on every row;
d = w_s - w; w_r = w + alpha * d / ||d|| (one L2 norm over the whole (1, n_latent, 512) code);
R = r_l2 * MSE(G_orig(w_r), G(w_r)) + r_lpips * LPIPS(G_orig(w_r), G(w_r)), both without noise, G_orig the
untuned generator (no gradient).
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..networks.stylegan2 import STYLE_DIM, Generator
from .settings import TuningSettings

TRUNCATION = 0.5   # G.mapping(z, None, truncation_psi=0.5)


def numpy_draws(seed: int) -> Iterator[np.ndarray]:
    """The z of each regulariser call: numpy's legacy randn(1, 512) after np.random.seed(seed), as the official
    coaches draw them (from a generator of our own: the process's numpy state is left alone)."""
    rs = np.random.RandomState(seed)
    while True:
        yield rs.randn(1, STYLE_DIM)


class LocalityRegulariser:
    def __init__(self, original: Generator, w_avg: torch.Tensor, settings: TuningSettings, lpips,
                 synthesise: Callable, draws: Iterator[np.ndarray] | None = None):
        self.original, self.w_avg, self.s, self.lpips = original, w_avg, settings, lpips
        self.synthesise = synthesise
        self.draws = draws if draws is not None else numpy_draws(settings.reg_seed)

    def mapping(self, z: torch.Tensor, n_latent: int) -> torch.Tensor:
        """w_avg + psi * (style(z) - w_avg), repeated over the n_latent rows: (1, n_latent, 512)."""
        with torch.no_grad():
            w = self.w_avg + TRUNCATION * (self.original.style(z) - self.w_avg)
        return w[:, None].expand(-1, n_latent, -1)

    def __call__(self, tuned: Generator, pivot: torch.Tensor) -> torch.Tensor:
        """R at the pivot (1, n_latent, 512), with the next z."""
        z = torch.from_numpy(next(self.draws)).to(pivot.device, pivot.dtype)
        d = self.mapping(z, pivot.shape[1]) - pivot
        w_r = pivot + self.s.reg_alpha * d / torch.norm(d, p=2)
        new = self.synthesise(tuned, w_r, noise=False)
        with torch.no_grad():
            old = self.synthesise(self.original, w_r, noise=False)
        loss = 0.0
        if self.s.reg_l2 > 0:
            loss = loss + F.mse_loss(old, new) * self.s.reg_l2
        if self.s.reg_lpips > 0:
            loss = loss + self.lpips(old, new).mean() * self.s.reg_lpips
        return loss   # the official mean over latent_ball_num_of_samples = 1 sample
