"""A tiny stand-in for train-core's model and step (tests of the loop's mechanics only: resume, shards, DDP).

Its step has the real one's shape: two passes, two backward() calls into the same .grad, batch-mean losses
that depend on the images, the own tokens, the target tokens and the mismatch flag.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from clipinverter_core.training.trainer import Parts


@dataclass
class Batch:
    x: torch.Tensor
    tokens: torch.Tensor
    tokens_target: torch.Tensor
    mismatched: bool


@dataclass
class StepResult:
    logs: dict
    images: dict


class TinyModel(nn.Module):
    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.adapter = nn.Linear(8, 3)
        self.remap = nn.Parameter(torch.zeros(3))
        self.frozen = nn.Linear(3, 3).requires_grad_(False)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def trainable_named_parameters(self):
        yield "adapter.weight", self.adapter.weight
        yield "adapter.bias", self.adapter.bias
        yield "decoder.lambdas.0", self.remap

    def _pass(self, x, tokens):
        feats = torch.cat([x.mean((2, 3)), tokens[:, :5].to(x.dtype) / 5e4], 1)  # (B, 8)
        return torch.tanh(self.frozen(self.adapter(feats)) + self.remap)

    def forward(self, batch: Batch):
        y_hat = self._pass(batch.x, batch.tokens_target)
        y_rec = self._pass(batch.x + y_hat.detach().mean(1)[:, None, None, None], batch.tokens)
        return y_hat, y_rec


def train_step(model, losses, batch):
    y_hat, _ = model(batch)
    target = batch.x.mean((2, 3))
    loss_real = ((y_hat - target) ** 2).mean() + (0.5 if batch.mismatched else 0.0) * y_hat.abs().mean()
    loss_real.backward()
    _, y_rec = model(batch)
    loss_cycle = ((y_rec - target) ** 2).mean()
    loss_cycle.backward()
    img = batch.x
    logs = {"loss_real": loss_real.item(), "loss_cycle": loss_cycle.item()}
    return StepResult({**logs, "loss": logs["loss_real"] + logs["loss_cycle"]}, {"input": img, "edit": img.flip(-1), "recovered": img})


def validation_step(model, losses, batch):
    with torch.no_grad():
        y_hat, y_rec = model(batch)
        target = batch.x.mean((2, 3))
        loss = ((y_hat - target) ** 2).mean() + ((y_rec - target) ** 2).mean()
    return StepResult({"loss": float(loss)}, {"input": batch.x, "edit": batch.x, "recovered": batch.x})


@functools.lru_cache(maxsize=1)
def _tokenizer():
    from clipinverter_core.networks.clip import Tokenizer
    return Tokenizer()


def tokenize(texts):
    return _tokenizer()(texts)


def make_parts(seed: int = 0, dtype=torch.float64, optimizer: str = "ranger") -> Parts:
    """The tiny model with the library's own optimiser (Ranger: Lookahead's k=6 sync is part of the state)."""
    from clipinverter_core.training.ranger import make_optimizer

    model = TinyModel(seed).to(dtype)
    params = [p for _, p in model.trainable_named_parameters()]
    return Parts(model, None, make_optimizer(optimizer, params, 1e-2), train_step, validation_step, Batch, tokenize)
