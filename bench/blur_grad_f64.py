"""The input gradient of the generator's blurs in float64 on the CPU (the training goldens' dtype): frozen_conv's
(the planes folded into the batch, one convolution) against autograd's own grouped convolution (aten's slow path:
one call per plane), on the shapes of a batch of 3 at StyleGAN size 256, in one run. Prints a row per shape, then
the totals and their ratio.

    PYTHONPATH=. python bench/blur_grad_f64.py [--batch 3] [--repeats 5]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from clipinverter_core.training.synthesis import frozen_conv

# (channels, side) of the blurs that follow the generator's transposed convolutions at 256 (a 2s+1 side, padding 1:
# the 2s output); the RGB skip's upsampling is upfirdn2d's, not frozen_conv
SHAPES = [(512, 9), (512, 17), (512, 33), (512, 65), (256, 129), (128, 257)]


def seconds(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.manual_seed(0)
    k = torch.randn(4, 4, dtype=torch.float64)
    totals = [0.0, 0.0]
    print(f"float64, batch {a.batch}, {torch.get_num_threads()} threads, best of {a.repeats}")
    print("| channels x side | autograd (grouped) | frozen_conv (folded) |")
    for c, side in SHAPES:
        x = torch.randn(a.batch, c, side, side, dtype=torch.float64, requires_grad=True)
        w = k[None, None].expand(c, 1, 4, 4)
        g = torch.randn(a.batch, c, side - 1, side - 1, dtype=torch.float64)
        y_ref, y_ours = F.conv2d(x, w, padding=1, groups=c), frozen_conv(x, w, padding=1, groups=c)
        ref = seconds(lambda: torch.autograd.grad(y_ref, x, g, retain_graph=True), a.repeats)
        ours = seconds(lambda: torch.autograd.grad(y_ours, x, g, retain_graph=True), a.repeats)
        assert torch.equal(torch.autograd.grad(y_ref, x, g)[0], torch.autograd.grad(y_ours, x, g)[0])
        totals[0] += ref
        totals[1] += ours
        print(f"| {c} x {side} | {ref * 1e3:.1f} ms | {ours * 1e3:.1f} ms |")
    print(f"total: autograd {totals[0] * 1e3:.0f} ms, frozen_conv {totals[1] * 1e3:.0f} ms, "
          f"ratio {totals[0] / totals[1]:.2f}x (the same gradients, to the bit)")


if __name__ == "__main__":
    main()
