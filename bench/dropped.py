"""Changes tried for the fast path and dropped, measured alone: A/B pairs interleaved in one process (ablations.py's
timing), each with its error against the kept op. Usage: PYTHONPATH=. python bench/dropped.py [--repeats N]

- the generator's transposed 3x3 convs (stride 2) as one regular 2x2 conv with 4x the outputs and a pixel
  shuffle (the polyphase form: 16 instead of 9 MACs per input pixel);
- oneDNN weight pre-packing in eager mode for the e4e heads' small convs (private torch.ops.mkldnn operators);
- native bf16 convolutions against float32 ones (speed, and the error of their bf16 output).
The last column is the tried op's relative L2 error against the kept one (float64 for bf16).
"""
from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ablations import CL, pair, start  # noqa: E402


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def polyphase_weight(w: torch.Tensor) -> torch.Tensor:
    """conv_transpose2d weight (in, out, 3, 3), stride 2 -> conv2d weight (4 * out, in, 2, 2) whose output,
    pixel-shuffled by 2 and cut to 2H + 1, is the transposed conv's. Even output rows take taps 2 and 0 of the
    kernel from input rows m - 1 and m, odd rows tap 1 from row m (the same along columns)."""
    taps = ((2, 0), (None, 1))  # phase -> kernel tap for the 2x2 window's first and second row

    def pick(phase_y, phase_x):
        rows = [[w[:, :, ky, kx] if ky is not None and kx is not None else torch.zeros_like(w[:, :, 0, 0])
                 for kx in taps[phase_x]] for ky in taps[phase_y]]
        return torch.stack([torch.stack(r, -1) for r in rows], -2).transpose(0, 1)  # (out, in, 2, 2)
    phases = torch.stack([pick(py, px) for py in (0, 1) for px in (0, 1)], 1)  # (out, 4, in, 2, 2)
    return phases.flatten(0, 1).contiguous()


def polyphase(x: torch.Tensor, w4: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[2:]
    return F.pixel_shuffle(F.conv2d(x, w4, padding=1), 2)[:, :, :2 * h + 1, :2 * w + 1]


def main():
    n, g = start("kept", "tried")
    rnd = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    with torch.inference_mode():
        for res, c_in, c_out in ((512, 64, 32), (256, 128, 64), (128, 256, 128)):
            x = rnd(1, c_in, res, res).contiguous(memory_format=CL)
            w = rnd(c_in, c_out, 3, 3) * 0.05
            w4 = polyphase_weight(w).contiguous(memory_format=CL)
            err = rel(polyphase(x, w4), F.conv_transpose2d(x, w, stride=2))
            pair(f"up-conv {c_in}->{c_out} at {res}^2: transposed -> polyphase 2x2 + shuffle",
                 lambda: F.conv_transpose2d(x, w, stride=2), lambda: polyphase(x, w4), n, note=f"{err:.1e}")
        for res in (8, 4, 2):
            x, w, b = rnd(1, 512, res, res), rnd(512, 512, 3, 3) * 0.02, torch.zeros(512)
            packed = torch.ops.mkldnn._reorder_convolution_weight(w, [1, 1], [2, 2], [1, 1], 1, list(x.shape))
            prepacked = lambda: torch.ops.mkldnn._convolution_pointwise(  # noqa: E731
                x, packed, b, [1, 1], [2, 2], [1, 1], 1, "none", [], "")
            err = rel(prepacked(), F.conv2d(x, w, b, stride=2, padding=1))
            pair(f"head conv 512->512 stride 2 at {res}^2: conv2d -> pre-packed weight",
                 lambda: F.conv2d(x, w, b, stride=2, padding=1), prepacked, n, note=f"{err:.1e}")
        for res, c in ((32, 512), (256, 128)):
            x, w = rnd(1, c, res, res).contiguous(memory_format=CL), rnd(c, c, 3, 3) * 0.05
            xb, wb = x.bfloat16(), w.bfloat16().contiguous(memory_format=CL)
            err = rel(F.conv2d(xb, wb, padding=1), F.conv2d(x.double(), w.double(), padding=1))
            pair(f"3x3 conv {c}->{c} at {res}^2: float32 -> native bf16",
                 lambda: F.conv2d(x, w, padding=1), lambda: F.conv2d(xb, wb, padding=1), n, note=f"{err:.1e}")


if __name__ == "__main__":
    main()
