"""What the commands share: argument types, the device and precision flags, numbered outputs, the stand-in warning."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

PRECISION_CHOICES = ("auto", "fp32", "fp16", "bf16")
# The names scripts used before the CLI had one name per concept: they still parse, and --help does not show them.
OLD_NAMES = {"--image": "--input", "--images": "--input", "--batch": "--batch-size", "--no-progress": "--quiet",
             "--alexnet": "--lpips-alexnet"}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help with every default shown (where the help text does not say it already) and without the old names."""

    def _get_help_string(self, action):
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS) and action.option_strings
        if shown and "default" not in text and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text

    def _format_action_invocation(self, action):
        kept = [s for s in action.option_strings if s not in OLD_NAMES]
        if kept != action.option_strings:
            action = argparse.Action(kept, action.dest, nargs=action.nargs, metavar=action.metavar)
        return super()._format_action_invocation(action)


class Parser(argparse.ArgumentParser):
    """Every command's parser: the shared help format."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def add_input(p, help: str, *old: str) -> None:
    """--input: what the command reads (a photo, a video, a folder); `old` names keep working."""
    p.add_argument("--input", *old, dest="input", required=True, help=help)


def face_index(text: str):
    """--face-index: 0, 1, ... or 'all'."""
    if text == "all":
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"expected 0, 1, ... or 'all', got {text!r}")


def _at_least_zero(text: str) -> float:
    v = float(text)
    if not (v >= 0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number 0 or more, got {text!r}")
    return v


def _fraction(text: str) -> float:
    v = float(text)
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 1, got {text!r}")
    return v


def add_face_filter(p) -> None:
    """--min-face-score and --min-face-size: which detections count as faces (align.FaceFilter; its defaults,
    which tests/test_face_filter.py checks these against)."""
    p.add_argument("--min-face-score", type=_at_least_zero, default=0.2,
                   help="detections the face detector scores lower are not faces (measured: real faces 1.06 to "
                        "1.67 in photos, down to 0.32 in the frames of a turning face, the astronaut's mission "
                        "patch 0.07 to 0.12); 0 keeps every detection")
    p.add_argument("--min-face-size", type=_fraction, default=0.2,
                   help="faces narrower than this fraction of the widest face are left out; 0 keeps them all")


def face_filter(a):
    """The align.FaceFilter of --min-face-score and --min-face-size."""
    from ..align import FaceFilter

    return FaceFilter(a.min_face_score, a.min_face_size)


def add_device(p, precision: bool = True) -> None:
    """--device (default: devices.default_device) and, for the edit commands, --precision."""
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available: CUDA, "
                   "then MPS, then the CPU)")
    if precision:
        p.add_argument("--precision", default="auto", choices=PRECISION_CHOICES,
                       help="auto: fp32 on the CPU and MPS, bf16 on CUDA GPUs that compute it natively, else fp16 "
                            "(fp32 matches the official code; bf16 and fp16 stay within 1e-2 of it)")


def add_quiet(p, *old: str, default=False) -> None:
    p.add_argument("--quiet", *old, action="store_true", default=default, help="no progress bars or lines")


@contextlib.contextmanager
def steps(names: list[str], quiet: bool = False):
    """A progress line over a command's few long steps, on a terminal only (tqdm's choice for anything else, so
    logs and pipes stay clean). Yields next_step(): call it when a step ends; the line names the next one."""
    from tqdm import tqdm

    with tqdm(total=len(names), desc=names[0], unit="step", file=sys.stderr, leave=False,
              disable=True if quiet else None, bar_format="{desc} {n_fmt}/{total_fmt} [{elapsed}]") as bar:
        def next_step():
            bar.update(1)
            if bar.n < len(names):
                bar.set_description_str(names[bar.n])
        yield next_step


def numbered(path: str, n: int, ext: str = ".png") -> list[str]:
    """One output path, or OUT_0.png, OUT_1.png, ... (`ext`) for n outputs."""
    return [path] if n == 1 else [f"{os.path.splitext(path)[0]}_{k}{ext}" for k in range(n)]


def warn_about_model(model, a, what: str = "the output will not look like a face") -> bool:
    """What the user should know about the loaded bundle, on stderr: stand-in random weights (then True), and no
    CLIPRemapper (a stage-1 training result), which edits without remapping (a.remap_strength becomes 0)."""
    from tqdm import tqdm  # its write() keeps a progress line (`steps`) below the message

    from ..pipeline import NO_REMAPPER
    from ..weights.sources import official_files_help

    if not model.has_remapper and getattr(a, "remap_strength", 0):
        tqdm.write(f"note: {NO_REMAPPER}: editing without remapping", file=sys.stderr)
        a.remap_strength = 0.0
    if not model.metadata.get("standin"):
        return False
    tqdm.write(f"WARNING: stand-in RANDOM weights: {what}.\n" + official_files_help(), file=sys.stderr)
    return True
