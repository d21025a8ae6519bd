"""What a user hands the edit, checked the same way by the API, the CLI and the nodes: prompts and strengths.
No torch here: the CLI checks its arguments with it before anything heavy loads."""
from __future__ import annotations

import math

from .errors import InputError

STRENGTH_RANGE = (-10.0, 10.0)  # the nodes' strength sliders; the CLI warns outside it


def check_prompts(texts: list) -> None:
    """At least one prompt, and each has words in it."""
    if not texts:
        raise InputError("no prompt given")
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise InputError(f"prompt {i + 1} of {len(texts)} is empty: describe the edited face, "
                             "e.g. 'this person has blonde hair'")


def check_strength(value: float, name: str = "strength") -> bool:
    """Raises for a strength that is not a finite number; False when it lies outside STRENGTH_RANGE."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, not {value}")
    return STRENGTH_RANGE[0] <= value <= STRENGTH_RANGE[1]
