"""The training loop: data -> tokens -> mismatch roll over the GLOBAL batch -> zero_grad -> step.train_step
(both passes, two backward) -> gradient mean over the ranks -> optimiser step; validation on the held-out split
(always mismatched); TensorBoard, PNG grids, checkpoints; Ctrl-C (or SIGTERM) saves and stops cleanly.

Every random choice of the loop is a function of (seed, step) and the data's of (seed, epoch, index), the same on
every rank, so a resumed run, or N ranks of B/N images, compute what one uninterrupted process computes.
"""
from __future__ import annotations

import contextlib
import re
import signal
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..errors import DataError
from . import checkpoint, distributed
from .data import CaptionedImages, Item, ShardedBatches, loader
from .logs import RunLog

MISMATCH_P = 0.75   # u ~ U(0, 1) <= 0.75: a mismatched step (the official coaches; HParams.mismatch_probability)
_STREAM_MISMATCH = 1  # the loop's random stream, apart from the data's


@dataclass
class Parts:
    """What train-core builds: the model, its losses, the optimiser, and the step functions."""
    model: Any
    losses: Any
    optimizer: torch.optim.Optimizer
    train_step: Callable
    validation_step: Callable
    make_batch: Callable          # (x, tokens, tokens_target, mismatched) -> step.Batch
    tokenize: Callable            # list[str] -> LongTensor (B, 77)
    score: Callable | None = None  # (model, losses, batch, images) -> {name: float}: validation's edit scores


@dataclass
class Schedule:
    max_steps: int
    batch_size: int               # the global batch (all ranks)
    seed: int = 0
    save_every: int = 1000
    val_every: int = 10000
    image_every: int = 1000
    board_every: int = 50
    val_batch_size: int | None = None  # global validation batch (None: batch_size)
    val_batches: int | None = None  # validation batches per validation (None: the whole split)
    workers: int = 0
    hflip: float = 0.5
    precision: str = "fp32"
    progress: bool = True
    mismatch_p: float = MISMATCH_P


def is_mismatched(seed: int, step: int, p: float = MISMATCH_P) -> bool:
    """The official u ~ U(0, 1) <= p, u drawn from (seed, step): the same u on every rank and after a resume."""
    return float(np.random.default_rng([seed, _STREAM_MISMATCH, step]).random()) <= p


def rolled(global_texts: list[str], rank: int, local: int) -> list[str]:
    """This rank's slice of the global batch's captions rolled by one (torch.roll(t, 1, dims=0))."""
    r = global_texts[-1:] + global_texts[:-1]
    return r[rank * local:(rank + 1) * local]


def data_error_line(e: Exception) -> str:
    """A DataError's own message, also when a DataLoader worker wrapped it with a traceback."""
    lines = [s for s in str(e).strip().splitlines() if s.strip()]
    m = re.match(r".*DataError: (.*)$", lines[-1]) if lines else None
    return m.group(1) if m else (lines[-1] if lines else type(e).__name__)


class _StopRequest:
    """SIGINT / SIGTERM set a flag the loop reads between steps; a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested, self._old = False, {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


@dataclass
class Trainer:
    parts: Parts
    train_items: list[Item]
    val_items: list[Item]
    run_dir: str
    schedule: Schedule
    config: dict
    device: torch.device
    dtype: torch.dtype = torch.float32
    ctx: distributed.Context = field(default_factory=distributed.Context)
    step: int = 0
    on_step: Callable[[int], None] | None = None  # called after each step (tests: a Ctrl-C at step k)

    def __post_init__(self):
        self.params = dict(self.parts.model.trainable_named_parameters())
        self.log = RunLog(self.run_dir, self.ctx.is_main)
        self.stop = _StopRequest()

    # --- state -------------------------------------------------------------------------------------------
    def data_order(self) -> dict:
        s = self.schedule
        per_epoch = len(self.train_items) // s.batch_size
        return {"seed": s.seed, "global_batch": s.batch_size, "n_train": len(self.train_items),
                "epoch": self.step // per_epoch, "position": self.step % per_epoch,
                "train_names_hash": _names_hash(self.train_items)}

    def save(self) -> None:
        if self.ctx.is_main:
            checkpoint.save(checkpoint.checkpoint_path(self.run_dir), self.step, self.config, self.params,
                            self.parts.optimizer.state_dict(), self.data_order())

    def resume(self, state: checkpoint.RunState) -> None:
        """Continues from a checkpoint: weights, optimiser, RNGs, step (the data order follows from the step)."""
        order = state.data_order
        if order.get("train_names_hash") != _names_hash(self.train_items):
            raise DataError(f"the training split differs from the one of {self.run_dir} "
                            f"({len(self.train_items)} images now, {order.get('n_train')} then)")
        missing = sorted(set(self.params) ^ set(state.params))
        if missing:
            raise checkpoint.CheckpointError(f"{self.run_dir}: the checkpoint's weights do not fit this model "
                                             f"(first: {missing[0]})")
        with torch.no_grad():
            for k, p in self.params.items():
                p.copy_(state.params[k])
        self.parts.optimizer.load_state_dict(state.optimizer)
        checkpoint.restore_rng(state.rng["tensors"], state.rng["meta"])
        self.step = state.step

    # --- the loop ----------------------------------------------------------------------------------------
    def _autocast(self):
        if self.schedule.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _batch(self, x: torch.Tensor, captions: list[str], mismatched: bool):
        local = len(captions)
        targets = rolled(distributed.gather_strings(self.ctx, captions), self.ctx.rank, local) \
            if mismatched else list(captions)
        tok = self.parts.tokenize
        batch = self.parts.make_batch(x.to(self.device, self.dtype), tok(captions).to(self.device),
                                      tok(targets).to(self.device), mismatched)
        return batch, targets

    def run(self) -> int:
        """Trains up to schedule.max_steps; returns the step reached (fewer when stopped)."""
        s = self.schedule
        distributed.broadcast_parameters(self.ctx, self.params.values())
        remaining = s.max_steps - self.step
        if remaining <= 0:
            return self.step
        sampler = ShardedBatches(len(self.train_items), s.batch_size, self.ctx.rank, self.ctx.world, s.seed,
                                 start=self.step, steps=remaining)
        batches = loader(CaptionedImages(self.train_items, s.hflip, s.seed), sampler, s.workers)
        self._bar = bar = _progress(s.progress and self.ctx.is_main, self.step, s.max_steps)
        self.parts.model.train()
        try:
            with self.stop:
                for x, captions in _reading(batches):
                    self._train_one(x, list(captions))
                    bar.update(1)
                    if self.on_step is not None:
                        self.on_step(self.step)
                    if distributed.any_flag(self.ctx, self.stop.requested, self.device):
                        bar.write(f"stopping at step {self.step}: saving {checkpoint.checkpoint_path(self.run_dir)}")
                        break
                    self._periodic()
        finally:
            bar.close()
        self.save()
        return self.step

    def _train_one(self, x: torch.Tensor, captions: list[str]) -> None:
        p = self.parts
        mismatched = is_mismatched(self.schedule.seed, self.step, self.schedule.mismatch_p)
        batch, targets = self._batch(x, captions, mismatched)
        p.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            result = p.train_step(p.model, p.losses, batch)
        distributed.average_gradients(self.ctx, self.params.values())
        p.optimizer.step()
        self.step += 1
        s = self.schedule
        if self.step % s.board_every == 0 or self.step == 1:
            logs = distributed.mean_values(self.ctx, result.logs, self.device)
            self.log.scalars("train", logs, self.step)
            if "loss" in logs:
                self._bar.set_postfix(loss=f"{logs['loss']:.4g}", refresh=False)
        if s.image_every and (self.step % s.image_every == 0 or self.step == 1):
            self.log.grid("train", self.step, result.images, captions, targets)

    def _periodic(self) -> None:
        s = self.schedule
        last = self.step == s.max_steps
        if self.val_items and s.val_every and (self.step % s.val_every == 0 or last):
            self.validate()
        if s.save_every and self.step % s.save_every == 0 and not last:
            self.save()

    def validate(self) -> dict[str, float]:
        """The held-out split, every batch mismatched (as the official coaches); logs val/<name> means."""
        s, p = self.schedule, self.parts
        vb = s.val_batch_size or s.batch_size
        n_batches = len(self.val_items) // vb
        if n_batches == 0:
            return {}
        if s.val_batches is not None:
            n_batches = min(n_batches, s.val_batches)
        sampler = ShardedBatches(len(self.val_items), vb, self.ctx.rank, self.ctx.world, s.seed,
                                 shuffle=False, steps=n_batches)
        totals: dict[str, float] = {}
        p.model.eval()
        with torch.no_grad():
            for k, (x, captions) in enumerate(_reading(loader(CaptionedImages(self.val_items, 0.0, s.seed),
                                                              sampler, 0))):
                batch, targets = self._batch(x, list(captions), True)
                with self._autocast():
                    result = p.validation_step(p.model, p.losses, batch)
                logs = dict(result.logs)
                if p.score is not None:  # the scores of `evaluate` (training/scores.py), as val/metric_<name>
                    logs.update(p.score(p.model, p.losses, batch, result.images))
                for name, v in logs.items():
                    totals[name] = totals.get(name, 0.0) + float(v) / n_batches
                if k == 0:
                    self.log.grid("val", self.step, result.images, list(captions), targets)
        p.model.train()
        means = distributed.mean_values(self.ctx, totals, self.device)
        self.log.scalars("val", means, self.step)
        return means


def _reading(batches):
    """The loader's batches; a DataError from a worker comes out as its own one-line message."""
    try:
        yield from batches
    except DataError as e:
        raise DataError(data_error_line(e)) from None


def _names_hash(items: list[Item]) -> str:
    import hashlib
    return hashlib.sha256("\n".join(it.name for it in items).encode()).hexdigest()[:16]


class _NoBar:
    def update(self, n): pass
    def set_postfix(self, **kw): pass
    def write(self, s): print(s)
    def close(self): pass


def _progress(enabled: bool, start: int, total: int):
    """tqdm: steps done, step rate and ETA."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, smoothing=0.1)
