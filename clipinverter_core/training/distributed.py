"""Several processes, one run: torch.distributed under torchrun (NCCL on CUDA, gloo on CPU).

`torchrun --nproc-per-node N [--nnodes M --rdzv-backend c10d --rdzv-endpoint HOST:PORT] -m clipinverter_core
train ...` sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous; `init` joins it. Each rank reads its own slice
of every global batch (data.ShardedBatches); only rank 0 writes files.

Gradients are averaged with one all_reduce of the trainable gradients, flattened, after BOTH backward passes of
a step, instead of wrapping the model in DistributedDataParallel: step.py drives the networks' submodules
itself (DDP's reducer is armed only by a forward through the DDP wrapper) and calls backward() twice, which
DDP would all-reduce twice (or need no_sync() on the first). The mean of the ranks' gradients of their batch
means is the gradient of the global batch mean (equal shard sizes), which is what DDP computes too; the frozen
networks need no synchronisation since every rank loads the same files, and the trainable weights are
broadcast from rank 0 once at the start.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist

from .. import devices


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def launched() -> bool:
    """True under torchrun (or any launcher that sets WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: str | None) -> tuple[Context, str | None]:
    """Joins the process group when launched by torchrun; returns the context and this rank's device
    (cuda:LOCAL_RANK when the run is on CUDA)."""
    if not launched():
        return Context(), device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    on_cuda = (device or devices.default_device(mps=False)).startswith("cuda")
    if on_cuda:
        device = f"cuda:{local}"
        devices.use_cuda_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if on_cuda else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), local), device


def shutdown(ctx: Context) -> None:
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()


def gather_strings(ctx: Context, texts: list[str]) -> list[str]:
    """Every rank's texts, concatenated in rank order (the global batch)."""
    if not ctx.active:
        return list(texts)
    out: list = [None] * ctx.world
    dist.all_gather_object(out, list(texts))
    return [t for part in out for t in part]


def broadcast_parameters(ctx: Context, params: Iterable[torch.Tensor]) -> None:
    if ctx.active:
        for p in params:
            dist.broadcast(p.data, src=0)


def average_gradients(ctx: Context, params: Iterable[torch.Tensor]) -> None:
    """Replaces every gradient by its mean over the ranks (one all_reduce of all of them, flattened)."""
    if not ctx.active:
        return
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= ctx.world
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n


def mean_values(ctx: Context, logs: dict[str, float], device=None) -> dict[str, float]:
    """The mean of each value over the ranks (every rank must pass the same keys)."""
    if not ctx.active or not logs:
        return dict(logs)
    keys = sorted(logs)
    t = torch.tensor([float(logs[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return {k: float(v) / ctx.world for k, v in zip(keys, t.tolist())}


def any_flag(ctx: Context, flag: bool, device=None) -> bool:
    """True on every rank when it is True on one (a stop request reaches them all at the same step)."""
    if not ctx.active:
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
