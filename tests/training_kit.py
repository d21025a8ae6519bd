"""Shared setup of the training golden tests: the networks, losses and batches each golden file describes
(../shared/parity/README.md, "Training"), rebuilt from the file and the recipe; nothing is hard-coded."""
from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import time

import numpy as np
import torch

from clipinverter_core.training.hparams import stage_defaults
from clipinverter_core.training.losses import build
from clipinverter_core.training.model import TrainingModel
from clipinverter_core.training.step import Batch

SMALL = 4096   # tensors up to this size are compared whole where the file stores them whole
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def load_golden(parity: str, name: str) -> dict:
    with np.load(os.path.join(parity, name), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def hparams_of(g: dict):
    stage = int(g["stage"])
    return stage_defaults(stage).replace(**json.loads(str(g["hparams"])))


def build_run(g: dict, kit_factory, lossnet_factory):
    """(model, losses) as the file's run had them: the recipe's weights at its size and seed, its stage,
    hyper-parameters and dtype; the adapter from pretrained_faces.pt, the generator from stylegan2's g_ema
    (stage 1) or pretrained_faces.pt's decoder with its remapper (stage 2)."""
    seed, size, stage = int(g["seed"]), int(g["size"]), int(g["stage"])
    dtype = DTYPES[str(g["dtype"])]
    kit, nets = kit_factory(size, seed), lossnet_factory(seed)
    f = kit.files
    model = TrainingModel.from_official(f["e4e"], f["clip"], stage, stylegan2=f["stylegan2"] if stage == 1 else None,
                                        clipinverter=f["clipinverter"], dtype=dtype)
    hp = hparams_of(g)
    return model, build(hp, model, arcface=nets["arcface"], moco=nets.get("moco"), alexnet=nets["alexnet"])


def batch_at(model: TrainingModel, g: dict, step: int, mismatch_probability: float) -> Batch:
    """The stored batch of `step` (x = image / 255 * 2 - 1), its captions, and the coach's draw on the stored
    schedule value; mismatched steps roll the captions by one, as the coach (and our trainer) does."""
    x = torch.from_numpy(g["images_uint8"][step]).permute(0, 3, 1, 2).double() / 255 * 2 - 1
    mismatched = bool(g["schedule"][step] <= mismatch_probability)
    assert mismatched == bool(g["mismatched"][step])
    tokens = model.tokenize([str(c) for c in g["captions"][step]])
    target = torch.roll(tokens, 1, dims=0) if mismatched else tokens
    return Batch(x.to(model.dtype), tokens, target, mismatched)


def rel(ours: float, ref: float) -> float:
    return abs(ours - ref) / abs(ref) if ref != 0 else (0.0 if ours == 0 else float("inf"))


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


@contextlib.contextmanager
def threads_for_batch(batch: int):
    """At least `batch` intra-op threads inside. aten's float64 convolutions (oneDNN takes float32 only) give each
    thread whole samples: a batch of 3 on two threads leaves one idle a third of the time. With 3 threads on 2 cores
    the float64 golden step of stage 2 took 104 s against 116 s (2-core CI machine, 2026-12-07). Each sample's
    convolution is one matrix product either way; the printed errors stayed at their magnitudes (1e-15 to 1e-12)."""
    n = torch.get_num_threads()
    torch.set_num_threads(max(n, batch))
    try:
        yield
    finally:
        torch.set_num_threads(n)


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t0


class GradCheck:
    """Compares gradients to a golden prefix (`<prefix>/norm|sum|full/<param>`) and keeps the worst errors."""

    def __init__(self, g: dict, tol: float):
        self.g, self.tol = g, tol
        self.worst = {"norm": 0.0, "sum": 0.0, "full": 0.0}
        self.errors: list[str] = []

    def __call__(self, prefix: str, stats: dict[str, "Stats"], shapes: dict[str, torch.Size]) -> None:
        g = self.g
        head = f"{prefix}/norm/"
        names = [k[len(head):] for k in g if k.startswith(head)]
        assert sorted(names) == sorted(shapes), f"{prefix}: the file's tensors are not our trained ones"
        for n in names:
            st = stats.get(n) or Stats.of(None, shapes[n])
            ref_norm = float(g[f"{prefix}/norm/{n}"])
            self._note("norm", rel(st.norm, ref_norm), f"{prefix} norm {n}: ours {st.norm!r} official {ref_norm!r}")
            scale = ref_norm * math.sqrt(st.numel)
            err = abs(st.sum - float(g[f"{prefix}/sum/{n}"]))
            self._note("sum", err / scale if scale else (0.0 if err == 0 else math.inf), f"{prefix} sum {n}")
            if f"{prefix}/full/{n}" in g:
                ref, ours = g[f"{prefix}/full/{n}"], st.full.numpy()
                e = (float(np.linalg.norm(ours - ref) / np.linalg.norm(ref)) if np.any(ref)
                     else float(np.abs(ours).max()))
                self._note("full", e, f"{prefix} full {n}")

    def _note(self, kind: str, e: float, what: str) -> None:
        self.worst[kind] = max(self.worst[kind], e)
        if not e <= self.tol:
            self.errors.append(f"{what} (error {e:.2e})")


class Stats:
    """What the files keep of a gradient: norm, sum, and the whole tensor when small (float64, CPU)."""

    def __init__(self, norm: float, sum_: float, numel: int, full: torch.Tensor | None):
        self.norm, self.sum, self.numel, self.full = norm, sum_, numel, full

    @classmethod
    def of(cls, t: torch.Tensor | None, shape: torch.Size, small: int = SMALL) -> "Stats":
        t = torch.zeros(shape, dtype=torch.float64) if t is None else t.detach().double().cpu()
        return cls(float(t.norm()), float(t.sum()), t.numel(), t.clone() if t.numel() <= small else None)


def summarise(tensors: dict[str, torch.Tensor | None], shapes: dict[str, torch.Size], small: int = SMALL
              ) -> dict[str, Stats]:
    return {n: Stats.of(tensors.get(n), shapes[n], small) for n in shapes}
