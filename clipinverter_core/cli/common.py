"""What the commands share: argument types, the device and precision flags, numbered outputs, the stand-in warning."""
from __future__ import annotations

import argparse
import os
import sys

PRECISION_CHOICES = ("fp32", "fp16", "bf16")


def face_index(text: str):
    """--face-index: 0, 1, ... or 'all'."""
    if text == "all":
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"expected 0, 1, ... or 'all', got {text!r}")


def add_device(p, precision: bool = True) -> None:
    """--device (default: devices.default_device) and, for the edit commands, --precision."""
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    if precision:
        p.add_argument("--precision", default="fp32", choices=PRECISION_CHOICES)


def numbered(path: str, n: int) -> list[str]:
    """One output path, or OUT_0.png, OUT_1.png, ... for n outputs."""
    return [path] if n == 1 else [f"{os.path.splitext(path)[0]}_{k}.png" for k in range(n)]


def warn_about_model(model, a, what: str = "the output will not look like a face") -> bool:
    """What the user should know about the loaded bundle, on stderr: stand-in random weights (then True), and no
    CLIPRemapper (a stage-1 training result), which edits without remapping (a.remap_strength becomes 0)."""
    from ..pipeline import NO_REMAPPER
    from ..weights.sources import official_files_help

    if not model.has_remapper and getattr(a, "remap_strength", 0):
        print(f"note: {NO_REMAPPER}: editing without remapping", file=sys.stderr)
        a.remap_strength = 0.0
    if not model.metadata.get("standin"):
        return False
    print(f"WARNING: stand-in RANDOM weights: {what}.\n" + official_files_help(), file=sys.stderr)
    return True
