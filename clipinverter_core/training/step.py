"""One training step of either stage, as the official coaches' train() loop body computes it, and the
validation step (their validate()).

    real pass:  t_tgt = C_T(tokens_target); (y_hat, w_hat) = model(x, t_tgt); L_real against x; backward
    cycle pass: (y_rec, w_hat_c) = model(y_hat.detach(), t_src); L_cycle against x, the directional term
                from y_hat to y_rec and from the target captions back to the own ones; cycle_lambda * L_cycle;
                backward
The caller zeroes the gradients before and steps the optimiser after (both passes' gradients accumulate),
and rolls the captions on mismatched steps (over the global batch under DDP). No random numbers are drawn.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from .losses import PassLoss, TrainingLosses
from .model import Render, TrainingModel


@dataclass
class Batch:
    x: torch.Tensor              # (B, 3, 256, 256) in [-1, 1]
    tokens: torch.Tensor         # (B, 77) the images' own captions
    tokens_target: torch.Tensor  # (B, 77) the captions the edit aims at (rolled by one on mismatched steps)
    mismatched: bool


@dataclass
class StepResult:
    logs: dict[str, float]
    images: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class PassOutput:
    render: Render
    loss: PassLoss


def text_embeddings(model: TrainingModel, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(t_src, t_tgt): CLIP text embeddings of the own and the target captions."""
    t_src = model.encode_text(batch.tokens)
    t_tgt = model.encode_text(batch.tokens_target) if batch.mismatched else t_src
    return t_src, t_tgt


def real_pass(model: TrainingModel, losses: TrainingLosses, batch: Batch, t_src, t_tgt) -> PassOutput:
    x = batch.x.to(model.device, model.dtype)
    r = model(x, t_tgt)
    loss = losses("real", r.image, x, r.codes, model.latent_avg, model.encode_image, x, t_src, t_tgt,
                  batch.mismatched, z_fixed=r.fixed)
    return PassOutput(r, loss)


def cycle_pass(model: TrainingModel, losses: TrainingLosses, batch: Batch, t_src, t_tgt,
               edited: torch.Tensor) -> PassOutput:
    x = batch.x.to(model.device, model.dtype)
    y_hat = edited.detach()
    r = model(y_hat, t_src)
    loss = losses("cycle", r.image, x, r.codes, model.latent_avg, model.encode_image, y_hat, t_tgt, t_src,
                  batch.mismatched, z_fixed=r.fixed)
    return PassOutput(r, loss)


def _images(x, real: PassOutput, cycle: PassOutput) -> dict[str, torch.Tensor]:
    out = {"input": x.detach(), "edit": real.render.image.detach(), "recovered": cycle.render.image.detach()}
    if real.render.fixed is not None:
        out["edit_fixed"] = real.render.fixed.detach()
    return out


def _logs(real: PassOutput, cycle: PassOutput) -> dict[str, float]:
    logs = {**real.loss.logs, **cycle.loss.logs}
    logs["loss"] = logs["loss_real"] + logs["loss_cycle"]
    return logs


def train_step(model: TrainingModel, losses: TrainingLosses, batch: Batch,
               inspect: Callable[[str, PassOutput], None] | None = None) -> StepResult:
    """Both passes, each followed by backward(); gradients accumulate in the parameters' .grad.
    `inspect(pass_name, output)` runs before each backward, with the pass's graph alive (tests take the
    gradient of each loss term there, with retain_graph=True)."""
    t_src, t_tgt = text_embeddings(model, batch)
    real = real_pass(model, losses, batch, t_src, t_tgt)
    if inspect is not None:
        inspect("real", real)
    real.loss.total.backward()
    cycle = cycle_pass(model, losses, batch, t_src, t_tgt, real.render.image)
    if inspect is not None:
        inspect("cycle", cycle)
    cycle.loss.total.backward()
    return StepResult(_logs(real, cycle), _images(batch.x, real, cycle))


@torch.no_grad()
def validation_step(model: TrainingModel, losses: TrainingLosses, batch: Batch) -> StepResult:
    """The same passes without gradients (the caller passes mismatched batches, as the coaches validate)."""
    t_src, t_tgt = text_embeddings(model, batch)
    real = real_pass(model, losses, batch, t_src, t_tgt)
    cycle = cycle_pass(model, losses, batch, t_src, t_tgt, real.render.image)
    return StepResult(_logs(real, cycle), _images(batch.x, real, cycle))
