"""One op at a time in float32 and float16 on the CPU (BENCHMARKS.md, "fp16 on the CPU"): PyTorch's own CPU fp16
kernels, without the project's HalfStorageFloatArithmetic. Prints milliseconds per call, one thread.

    python bench/cpu_half_ops.py
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F


def ms(fn, repeats: int = 3) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats * 1e3


def main() -> None:
    torch.set_num_threads(1)
    for dt in (torch.float32, torch.float16):
        x, w = torch.randn(1, 64, 64, 64, dtype=dt), torch.randn(64, 64, 3, 3, dtype=dt)
        a, b = torch.randn(50, 768, dtype=dt), torch.randn(768, 768, dtype=dt)
        q = torch.randn(1, 12, 50, 64, dtype=dt)
        ops = {"conv 3x3": lambda: F.conv2d(x, w, padding=1),
               "conv_transpose": lambda: F.conv_transpose2d(x, w, stride=2),
               "depthwise conv": lambda: F.conv2d(x, w[:, :1].contiguous(), padding=1, groups=64),
               "linear": lambda: F.linear(a, b), "bmm": lambda: torch.bmm(a[None], b[None]),
               "attention": lambda: F.scaled_dot_product_attention(q, q, q),
               "layer_norm": lambda: F.layer_norm(a, (768,)), "leaky_relu": lambda: F.leaky_relu(x, 0.2),
               "avg_pool": lambda: F.avg_pool2d(x, 2)}
        with torch.inference_mode():
            print(str(dt).ljust(14), "  ".join(f"{k} {ms(f):.2f} ms" for k, f in ops.items()))


if __name__ == "__main__":
    main()
