"""What every command's arguments are checked for before anything loads: the device, the strengths, the prompts,
the input files and where the outputs go. A mistake is one line (exit 2) within a second, not after the model load.
"""
from __future__ import annotations

import os
import sys

from ..errors import InputError
from ..inputs import STRENGTH_RANGE, check_prompts, check_strength

STRENGTH_FLAGS = ("strength", "remap_strength")  # a number, or a list of them (evaluate)
INPUT_FILES = ("input", "model", "tuning")        # what a command reads: a file, or a folder (evaluate)
OUTPUTS = ("output", "save_raw", "out", "save_tuning")  # files or folders a command writes (folders are made)


def check_arguments(a) -> None:
    """Raises InputError (or FileNotFoundError) for the first mistake; warns on stderr (one line each) about
    values the nodes' sliders do not reach."""
    if getattr(a, "device", None):
        from ..devices import usable_device
        usable_device(a.device)
    for name in STRENGTH_FLAGS:
        _check_strengths(a, name)
    texts = getattr(a, "text", None)
    if texts is not None:
        check_prompts([texts] if isinstance(texts, str) else list(texts))
    for name in INPUT_FILES:
        path = getattr(a, name, None)
        if isinstance(path, str) and not os.path.exists(path):
            raise FileNotFoundError(2, "no such file", path)
    for name in OUTPUTS:
        path = getattr(a, name, None)
        if isinstance(path, str):
            check_writable(path)
    if hasattr(a, "refine_identity"):
        from .identity import check_tuning_args
        check_tuning_args(a)


def _check_strengths(a, name: str) -> None:
    values = getattr(a, name, None)
    if values is None:
        return
    flag = "--" + name.replace("_", "-")
    lo, hi = STRENGTH_RANGE
    for v in values if isinstance(values, (list, tuple)) else [values]:
        if not check_strength(v, flag):
            print(f"warning: {flag} {v:g} is outside {lo:g}..{hi:g}, the range of the nodes' slider: expect a "
                  "picture far from a face", file=sys.stderr)


def check_writable(path: str) -> None:
    """The output can be written: its nearest existing folder is a folder we may write in (atomic_output makes
    the missing ones)."""
    folder = os.path.abspath(path)
    if not os.path.isdir(folder):  # a file to write, or a folder yet to make
        folder = os.path.dirname(folder)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise InputError(f"cannot write {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {path}: no permission to write in {folder}")
