"""`bench`: the fast edit against the reference edit, timed in one process (the timing itself: bench.py)."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    b = sub.add_parser("bench", help="time the fast edit against the reference edit (same weights, same process)")
    b.add_argument("--model", default=None, help="bundle (.safetensors); default: stand-in random weights")
    b.add_argument("--size", type=int, default=1024, help="StyleGAN size of the stand-in weights")
    b.add_argument("--batch-size", "--batch", default="1", help="batch sizes, comma-separated, e.g. 1,8,32")
    b.add_argument("--precision", default="fp32", help="precisions of the fast path, comma-separated: fp32,bf16,fp16")
    b.add_argument("--device", default="cpu", help="cpu or cuda")
    b.add_argument("--repeats", type=int, default=3, help="timed rounds after one warm-up round")
    b.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    b.add_argument("--compile", default=None, choices=("default", "reduce-overhead", "max-autotune"),
                   help="torch.compile the fast path's heavy stages (compiled.py); the warm-up round compiles")
    b.set_defaults(run=run)


def run(a) -> int:
    batches = [int(b) for b in str(a.batch_size).split(",") if b]
    precisions = [p for p in str(a.precision).split(",") if p]
    for p in precisions:
        if p not in ("fp32", "fp16", "bf16"):
            raise SystemExit(f"unknown precision {p!r}")
    from ..bench import run_bench

    report = run_bench(a.model, a.size, batches, precisions, a.device, a.repeats, a.threads,
                       compile=a.compile)
    print(json.dumps(report))
    return 0 if all(r["finite"] for r in report["results"]) else 1

