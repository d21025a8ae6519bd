"""Pivotal tuning: the generator's synthesis weights tuned so that G(w_pivot) reproduces the photo, the pivots
fixed (CLIPINVERTER.md, "Pivotal tuning"; settings.py has the two official loops' defaults).

One loop serves both official coaches: for each step, for each image in order: forward at its pivot, the loss
(MSE + LPIPS against the image, plus the locality regulariser where it is on), zero_grad, then (one photo
with an LPIPS stop: stop here when LPIPS <= the stop, as PTI's SingleIDCoach does) backward and an Adam step.
One image with the photo defaults is SingleIDCoach; several are MultiIDCoach (no stop); the clip defaults are
STIT's Coach. The generator given is never changed: a copy is tuned, and the result is the change of each tuned
tensor (Tuning.deltas).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..images import uint8_to_signed
from ..networks.stylegan2 import Generator
from ..training.synthesis import synthesis
from .regulariser import LocalityRegulariser
from .settings import TuningSettings

SYNTHESIS_PARAMETERS = ("input.", "conv1.", "to_rgb1.", "convs.", "to_rgbs.")  # not style.* (mapping), not the remapper


@dataclass
class Visit:
    """One image's forward of one step: its losses (`loss` includes the regulariser; l2 and lpips are against the
    image alone)."""
    step: int
    frame: int
    loss: float
    l2: float
    lpips: float


@dataclass
class Tuning:
    """The change of every tuned tensor of the generator (name -> tuned - base, on the CPU), how it was made, and
    what it bought: the mean L2 and LPIPS against the images before tuning (`first`, the first step's forwards)
    and after it (`last`, the tuned generator at every pivot); `visits`: every visit's losses, kept in memory
    only. `base_sha256` names the bundle whose generator was tuned."""
    deltas: dict[str, torch.Tensor]
    settings: TuningSettings
    images: int
    steps_run: int
    first: dict[str, float]
    last: dict[str, float]
    base_sha256: str = ""
    visits: list[Visit] = field(default_factory=list)
    pivots: torch.Tensor | None = None   # (N, n_latent, 512): the codes it was tuned at (in memory only)


    def summary(self) -> str:
        a, b = self.first, self.last
        return (f"identity tuning ({self.settings.mode}, {self.images} image(s), {self.steps_run} step(s)): "
                f"LPIPS {a['lpips']:.4f} -> {b['lpips']:.4f}, L2 {a['l2']:.4f} -> {b['l2']:.4f}")


def combine(pairs) -> Tuning:
    """One Tuning for several applied in turn ((Tuning, strength) pairs on the same bundle): the strength-weighted
    sum of their changes, the first one's starting losses, the last one's settings and final losses."""
    pairs = list(pairs)
    if len(pairs) == 1 and pairs[0][1] == 1.0:
        return pairs[0][0]
    first, last = pairs[0][0], pairs[-1][0]
    if any(t.base_sha256 != first.base_sha256 for t, _ in pairs):
        raise ValueError("tunings of different bundles cannot be combined")
    deltas: dict[str, torch.Tensor] = {}
    for t, strength in pairs:
        for n, d in t.deltas.items():
            deltas[n] = deltas[n] + strength * d if n in deltas else strength * d
    return Tuning(deltas, last.settings, sum(t.images for t, _ in pairs), sum(t.steps_run for t, _ in pairs),
                  first.first, last.last, first.base_sha256)


def synthesise(gen: Generator, w: torch.Tensor, noise: bool = True) -> torch.Tensor:
    """G.synthesis(w, 'const') (`noise=False`: 'none'): the decoder on W+ codes, no remapper, differentiable
    in the weights."""
    conv_codes, rgb_codes = gen.split_wplus(w)
    return synthesis(gen, conv_codes, rgb_codes, noise=noise)


def synthesis_parameters(gen: Generator) -> dict[str, torch.nn.Parameter]:
    """Every parameter the synthesis uses (constant input, conv weights, modulation, noise weights, activation
    biases, ToRGB), by name."""
    return {n: p for n, p in gen.named_parameters() if n.startswith(SYNTHESIS_PARAMETERS)}


def normal_tensors(module: torch.nn.Module) -> torch.nn.Module:
    """The module with every parameter and buffer made in inference mode (a ComfyUI load) replaced, in place, by
    a normal copy: autograd cannot save inference tensors for the backward."""
    for m in module.modules():
        for store in (m._parameters, m._buffers):
            for name, t in store.items():
                if t is not None and t.is_inference():
                    copy_ = t.detach().clone()
                    store[name] = torch.nn.Parameter(copy_, t.requires_grad) if isinstance(t, torch.nn.Parameter) else copy_
    return module


class PivotalTuner:
    """Tunes a copy of `generator` (float64 stays float64, anything else is tuned in float32) with the LPIPS
    network `lpips` ((a, b) -> (B,) in [-1, 1]) and `w_avg` (512,) for the regulariser's mapping."""

    def __init__(self, generator: Generator, lpips, w_avg: torch.Tensor, settings: TuningSettings, draws=None):
        self.settings = settings.checked()
        p0 = next(generator.parameters())
        dtype = torch.float64 if p0.dtype == torch.float64 else torch.float32
        with torch.inference_mode(False):  # ComfyUI runs nodes in inference mode; autograd needs normal tensors
            self.original = generator if p0.dtype == dtype else copy.deepcopy(generator).to(dtype)
            self.gen = normal_tensors(copy.deepcopy(self.original)).requires_grad_(False)
            self.params = synthesis_parameters(self.gen)
            for p in self.params.values():
                p.requires_grad_(True)
            self.lpips = normal_tensors(lpips)
        self.dtype, self.device = dtype, p0.device
        self.opt = torch.optim.Adam(list(self.params.values()), lr=settings.lr, betas=tuple(settings.betas))
        self.regulariser = LocalityRegulariser(self.original, w_avg.to(self.device, dtype), settings, self.lpips,
                                               synthesise, draws) if settings.regulariser else None

    def run(self, pivots: torch.Tensor, images: torch.Tensor, progress: Callable | None = None,
            check: Callable | None = None, inspect: Callable | None = None) -> Tuning:
        """pivots (F, n_latent, 512) with latent_avg; images (F, 3, size, size) in [-1, 1], or uint8 (a clip's
        crops: they stay where they are and are converted one at a time, so F frames never sit in float32).
        `progress(step, steps, visit)` after each step; `check()` before each forward (raises to cancel);
        `inspect(visit, params)` before each optimiser step, with the gradients in place (tests)."""
        size = self.gen.size
        if images.ndim != 4 or images.shape[1:] != (3, size, size) or pivots.shape[0] != images.shape[0]:
            raise InputError(f"tuning takes one (3, {size}, {size}) image per pivot, got images "
                             f"{tuple(images.shape)} for pivots {tuple(pivots.shape)}")
        with torch.inference_mode(False), torch.enable_grad():
            pivots = pivots.to(self.device, self.dtype).clone()
            if images.dtype != torch.uint8:
                images = images.to(self.device, self.dtype).clone()
            return self._run(pivots, images, progress, check, inspect)

    def _image(self, images: torch.Tensor, f: int) -> torch.Tensor:
        """Image f as (1, 3, size, size) in [-1, 1] on the tuning's device and dtype."""
        return uint8_to_signed(images[f:f + 1].to(self.device), self.dtype)

    def _run(self, pivots, images, progress, check, inspect) -> Tuning:
        s, gen = self.settings, self.gen
        frames = len(images)
        stop = s.lpips_stop if s.mode == "photo" and frames == 1 else None
        gen.train()
        visits: list[Visit] = []
        for step in range(s.steps):
            for f in range(frames):
                if check is not None:
                    check()
                pivot, x = pivots[f:f + 1], self._image(images, f)
                out = synthesise(gen, pivot)
                l2 = F.mse_loss(out, x)
                lp = self.lpips(out, x).mean()
                loss = 0.0
                if s.l2_weight > 0:
                    loss = loss + l2 * s.l2_weight
                if s.lpips_weight > 0:
                    loss = loss + lp * s.lpips_weight
                if self.regulariser is not None:
                    loss = loss + self.regulariser(gen, pivot)
                self.opt.zero_grad(set_to_none=True)
                visit = Visit(step, f, float(loss.detach()), float(l2.detach()), float(lp.detach()))
                visits.append(visit)
                if stop is not None and visit.lpips <= stop:
                    return self._result(visits, pivots, images)
                loss.backward()
                if inspect is not None:
                    inspect(visit, self.params)
                self.opt.step()
            if progress is not None:
                progress(step + 1, s.steps, visits[-1])
        return self._result(visits, pivots, images)

    def _result(self, visits: list[Visit], pivots: torch.Tensor, images: torch.Tensor) -> Tuning:
        self.gen.eval()
        before = dict(self.original.named_parameters())
        deltas = {n: (p.detach() - before[n]).contiguous().cpu() for n, p in self.params.items()}
        first = [v for v in visits if v.step == 0]
        after = [self._losses(pivots[f:f + 1], self._image(images, f)) for f in range(len(images))]
        return Tuning(deltas, self.settings, len(images), visits[-1].step + 1,
                      {"l2": sum(v.l2 for v in first) / len(first), "lpips": sum(v.lpips for v in first) / len(first)},
                      {"l2": sum(a[0] for a in after) / len(after), "lpips": sum(a[1] for a in after) / len(after)},
                      visits=visits, pivots=pivots.detach().float().cpu())

    @torch.no_grad()
    def _losses(self, pivot: torch.Tensor, x: torch.Tensor) -> tuple[float, float]:
        """(L2, LPIPS) of the tuned generator at `pivot` against `x`."""
        out = synthesise(self.gen, pivot)
        return float(F.mse_loss(out, x)), float(self.lpips(out, x).mean())
