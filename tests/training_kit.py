"""Shared setup of the training golden tests: the networks, losses and batches each golden file describes
(../shared/parity/README.md, "Training"), rebuilt from the file and the recipe; nothing is hard-coded."""
from __future__ import annotations

import json
import os
import resource
import time

import numpy as np
import torch

from clipinverter_core.training.hparams import stage_defaults
from clipinverter_core.training.losses import build
from clipinverter_core.training.model import TrainingModel
from clipinverter_core.training.step import Batch

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


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t0
