"""What the tests' narrow stand-in bundle saves (tests/conftest.py, standin256): seconds of an edit of one face and
of one photo-tuning step, on a bundle at the released widths against a stand-in whose generator and e4e style heads
are WIDTH channels wide, in one process, the same inputs, best of --repeats (tuning: the mean of --steps steps).

    PYTHONPATH=. python bench/standin_cost.py --bundle KIT/kit256/bundle.safetensors \
        --alexnet KIT/lossnets/alexnet-owt-7be5be79.pth [--width 64] [--repeats 3] [--steps 5]

It writes the narrow bundle once to --narrow (default: beside --bundle). The encoder's backbone, the adapter and CLIP
keep their released shapes, so what is left of an edit is mostly the backbone and CLIP.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from clipinverter_core.lossnets import load_lpips
from clipinverter_core.pipeline import CLIPInverter
from clipinverter_core.tuning import PHOTO, refine_identity
from clipinverter_core.weights.bundle import read_metadata
from clipinverter_core.weights.standin import make_standin_bundle


def measure(path: str, x: torch.Tensor, lpips, repeats: int, steps: int) -> tuple[float, float]:
    model = CLIPInverter.from_bundle(path, "cpu")
    t = model.encode_text(["a smile"])
    model.edit(x, t)  # warm-up
    edits = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.edit(x, t)
        edits.append(time.perf_counter() - start)
    settings = PHOTO.replace(lpips_stop=0)
    refine_identity(model, x, x, settings.replace(steps=1), lpips=lpips)  # warm-up
    start = time.perf_counter()
    refine_identity(model, x, x, settings.replace(steps=steps), lpips=lpips)
    return min(edits), (time.perf_counter() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, help="a bundle at the released widths (e.g. the parity kit's at 256)")
    ap.add_argument("--alexnet", required=True, help="LPIPS' AlexNet (the parity kit's stand-in will do)")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--narrow", help="where the narrow stand-in goes (default: beside --bundle)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    size = int(read_metadata(a.bundle)["stylegan_size"])
    narrow = a.narrow or os.path.join(os.path.dirname(os.path.abspath(a.bundle)),
                                      f"standin{size}_width{a.width}.safetensors")
    if not os.path.isfile(narrow):
        make_standin_bundle(narrow, size, 0, width=a.width)
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
    lpips = load_lpips(a.alexnet)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = [("released widths", a.bundle), (f"stand-in, width {a.width}", narrow)]
    results = [measure(path, x, lpips, a.repeats, a.steps) for _, path in rows]
    for (name, _), (edit, step) in zip(rows, results):
        print(f"{name:24s} edit {edit:.2f} s   tuning {step:.2f} s/step")
    (e0, s0), (e1, s1) = results
    print(f"ratio (released / stand-in): edit {e0 / e1:.1f}x, tuning step {s0 / s1:.1f}x")


if __name__ == "__main__":
    main()
