"""The settings of pivotal tuning, with the two official codebases' defaults (CLIPINVERTER.md, "Pivotal tuning").

- photo (danielroich/PTI's SingleIDCoach; MultiIDCoach for several photos of one person): Adam lr 3e-4, up to 350
  steps, loss = MSE + LPIPS against the photo, stop before the backward of the first step whose LPIPS is at most
  0.06 (one photo only: MultiIDCoach has no stop), no locality regulariser.
- clip (rotemtzaban/STIT's Coach): one generator and one Adam (lr 3e-5, betas (0.9, 0.999)) for every frame,
  50 steps, each frame stepping the optimiser, the locality regulariser on at every frame, no stop.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

from ..errors import InputError

MODES = ("photo", "clip")


@dataclass(frozen=True)
class TuningSettings:
    mode: str = "photo"
    steps: int = 350                   # PTI's max_pti_steps; STIT's default is 50
    lr: float = 3e-4                   # PTI's pti_learning_rate; STIT's is 3e-5
    betas: tuple[float, float] = (0.9, 0.999)
    lpips_stop: float | None = 0.06    # PTI's LPIPS_value_threshold (one photo); None: never stop early
    l2_weight: float = 1.0             # pt_l2_lambda
    lpips_weight: float = 1.0          # pt_lpips_lambda
    regulariser: bool = False          # use_locality_regularization
    reg_alpha: float = 30.0            # regulizer_alpha: the radius of the ball around the pivot
    reg_l2: float = 0.1                # regulizer_l2_lambda
    reg_lpips: float = 0.1             # regulizer_lpips_lambda
    reg_seed: int = 0                  # the regulariser's z draws (numpy's randn, as both codebases draw them)

    def replace(self, **changes) -> "TuningSettings":
        return dataclasses.replace(self, **changes).checked()

    def checked(self) -> "TuningSettings":
        if self.mode not in MODES:
            raise InputError(f"tuning mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise InputError(f"tuning steps must be a whole number, 1 or more, not {self.steps!r}")
        numbers = {"lr": self.lr, "l2 weight": self.l2_weight, "lpips weight": self.lpips_weight,
                   "regulariser alpha": self.reg_alpha, "regulariser l2": self.reg_l2,
                   "regulariser lpips": self.reg_lpips}
        for name, v in numbers.items():
            if not math.isfinite(v) or v < 0:
                raise InputError(f"tuning {name} must be a finite number, 0 or more, not {v!r}")
        if self.lr == 0:
            raise InputError("a tuning lr of 0 changes nothing")
        if self.lpips_stop is not None and not math.isfinite(self.lpips_stop):
            raise InputError(f"the LPIPS stop must be a finite number, not {self.lpips_stop!r}")
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TuningSettings":
        d = json.loads(text)
        d["betas"] = tuple(d["betas"])
        return cls(**d).checked()


PHOTO = TuningSettings()
CLIP = TuningSettings(mode="clip", steps=50, lr=3e-5, lpips_stop=None, regulariser=True)


def from_official(hparams: dict, coach: str) -> TuningSettings:
    """The settings of an official `configs/hyperparameters.py` (as a dict): danielroich/PTI's (coach 'pti') or
    rotemtzaban/STIT's (coach 'stit', whose regulariser names are spelled 'regularizer_*')."""
    if coach not in ("pti", "stit"):
        raise InputError(f"coach must be 'pti' or 'stit', not {coach!r}")
    h = dict(hparams)
    if h.get("use_lr_ramp"):
        raise InputError("STIT's lr ramp is not supported (its default is off)")
    reg = "regularizer_" if coach == "stit" else "regulizer_"
    return TuningSettings(
        mode="photo" if coach == "pti" else "clip", steps=int(h["max_pti_steps"]), lr=float(h["pti_learning_rate"]),
        betas=(float(h.get("pti_adam_beta1", 0.9)), 0.999),
        lpips_stop=float(h["LPIPS_value_threshold"]) if coach == "pti" else None,
        l2_weight=float(h["pt_l2_lambda"]), lpips_weight=float(h["pt_lpips_lambda"]),
        regulariser=bool(h["use_locality_regularization"]), reg_alpha=float(h[reg + "alpha"]),
        reg_l2=float(h[reg + "l2_lambda"]), reg_lpips=float(h[reg + "lpips_lambda"])).checked()


def defaults(mode: str) -> TuningSettings:
    """The official defaults of `mode` ('photo': PTI, 'clip': STIT)."""
    if mode not in MODES:
        raise InputError(f"tuning mode must be one of {', '.join(MODES)}, not {mode!r}")
    return PHOTO if mode == "photo" else CLIP
