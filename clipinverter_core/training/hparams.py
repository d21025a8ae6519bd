"""Hyper-parameters of a training run, under the official option names (adapter/options/train_options*.py).

`stage_defaults(stage)` gives the official README's commands:
    stage 1: id 0.1, l2 1, lpips 0.6, w_norm 0.005, clip 1 (the option's default), cycle 1, lr 5e-4,
             200k steps, batch 8, Ranger, start_from_latent_avg
    stage 2: id 0.15, l2 0.15, lpips 0.15, w_norm 0.005, clip 1.75, cycle 1, lr 1.5e-4, 20k steps, batch 8
Fields the official code hard-codes are named here with the official value as default: the mismatch
probability (3/4), the weight of stage 2's terms against the render without the remapper (0.35), and whether
stage 2 adds W-norm to its loss (the official stage 2 computes and logs it, but never adds it: False).
Every field is a plain number, string or bool, so `dataclasses.asdict` is JSON-serialisable.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

MISMATCH_PROBABILITY = 3 / 4     # `random.random() <= 3/4`: the edit aims at another image's caption
FIXED_RENDER_WEIGHT = 0.35       # stage 2: L2 and LPIPS against the render without the remapper
CLIP_PREPROCESS = ("official", "standard")
OPTIMIZERS = ("ranger", "adam")


@dataclass
class HParams:
    stage: int = 1
    batch_size: int = 8
    test_batch_size: int = 8
    learning_rate: float = 5e-4
    max_steps: int = 200_000
    optim_name: str = "ranger"
    id_lambda: float = 0.1
    l2_lambda: float = 1.0
    lpips_lambda: float = 0.6
    w_norm_lambda: float = 0.005
    clip_lambda: float = 1.0
    cycle_lambda: float = 1.0
    use_moco: bool = False
    start_from_latent_avg: bool = True
    mismatch_probability: float = MISMATCH_PROBABILITY
    fixed_render_weight: float = FIXED_RENDER_WEIGHT
    stage2_adds_w_norm: bool = False
    clip_preprocess: str = "official"

    def __post_init__(self):
        if self.stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {self.stage}")
        if self.optim_name not in OPTIMIZERS:
            raise ValueError(f"optim_name must be one of {OPTIMIZERS}, got {self.optim_name!r}")
        if self.clip_preprocess not in CLIP_PREPROCESS:
            raise ValueError(f"clip_preprocess must be one of {CLIP_PREPROCESS}, got {self.clip_preprocess!r}")

    @property
    def adds_w_norm(self) -> bool:
        """Whether W-norm enters this stage's loss (it is computed and logged whenever w_norm_lambda > 0)."""
        return self.stage == 1 or self.stage2_adds_w_norm

    def replace(self, **changes) -> "HParams":
        return dataclasses.replace(self, **changes)


STAGE_DEFAULTS = {
    1: dict(stage=1, id_lambda=0.1, l2_lambda=1.0, lpips_lambda=0.6, w_norm_lambda=0.005, clip_lambda=1.0,
            cycle_lambda=1.0, learning_rate=5e-4, max_steps=200_000),
    2: dict(stage=2, id_lambda=0.15, l2_lambda=0.15, lpips_lambda=0.15, w_norm_lambda=0.005, clip_lambda=1.75,
            cycle_lambda=1.0, learning_rate=1.5e-4, max_steps=20_000),
}


def stage_defaults(stage: int) -> HParams:
    if stage not in STAGE_DEFAULTS:
        raise ValueError(f"stage must be 1 or 2, got {stage}")
    return HParams(**STAGE_DEFAULTS[stage])
