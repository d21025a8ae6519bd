"""Where the fast edit's work goes, stage by stage: multiply-accumulates (torch.utils.flop_counter), peak memory
above idle of each stage run alone, and a torch.profiler table of one whole edit by operator and input shape.

    PYTHONPATH=. python bench/breakdown.py --size 1024 [--model BUNDLE] [--batch 1] [--profile-rows 15]

Without --model it writes a stand-in bundle (random weights, the official shapes) in a temporary folder: MACs
and memory depend on the shapes alone. Memory is CPU resident memory (or the CUDA allocator's) above the level
before the stage, after one warm-up call of the same stage, so that the mapped weights already count as idle; what
the allocator kept from the warm-up counts as idle too, so it is a lower bound (BENCHMARKS.md).
"""
from __future__ import annotations

import argparse
import os
import tempfile

import torch
from torch.utils.flop_counter import FlopCounterMode

from clipinverter_core.bench import PROMPT, PeakRSS, cpu_name
from clipinverter_core.pipeline import CLIPInverter


def stages(model: CLIPInverter, batch: int) -> dict:
    """Each stage of the edit as a function of prepared inputs, in the edit's order."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, 3, 256, 256, generator=g) * 2 - 1).to(model.device)
    prompts = [PROMPT] * batch
    t = model.encode_text(prompts)
    feats = model.features(x)
    _, w_hat = model.edit_features(feats, t)
    latent = model.remap(w_hat, t)
    return {"CLIP text": lambda: model.encode_text(prompts), "backbone": lambda: model.features(x),
            "heads, one pass": lambda: model._heads(feats), "adapter": lambda: model.adapter(feats, t),
            "adapter + heads, both passes": lambda: model.edit_features(feats, t),
            "remapper": lambda: model.remap(w_hat, t), "synthesis": lambda: model.decode(latent),
            "whole edit": lambda: model.edit(x, model.encode_text(prompts))}


def gmac(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 2e9  # a multiply-accumulate is two flops


def peak_mib(fn, device) -> float:
    fn()  # warm-up: weights paged in, caches filled
    with PeakRSS(device) as mem:
        fn()
    return mem.peak / 2 ** 20


def dense_conv_gmac_per_s(repeats: int = 5) -> float:
    """The CPU's float32 throughput on its best shape here: a dense 3x3 conv, 512 channels at 64^2 (median)."""
    import statistics
    import time

    x, w = torch.randn(1, 512, 64, 64), torch.randn(512, 512, 3, 3)
    torch.nn.functional.conv2d(x, w, padding=1)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.nn.functional.conv2d(x, w, padding=1)
        times.append(time.perf_counter() - t0)
    return 512 * 512 * 9 * 64 * 64 / statistics.median(times) / 1e9


def profile(fn, rows: int) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as run_profiler

    fn()
    with run_profiler(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    events = prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if "conv" in e.key)
    print(f"\nprofile of one whole edit: CPU time {total / 1e3:.0f} ms, ops named *conv* {conv / 1e3:.0f} ms "
          f"({100 * conv / total:.0f}%)")
    print(events.table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40,
                       max_shapes_column_width=70))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="bundle (.safetensors); default: stand-in random weights")
    ap.add_argument("--size", type=int, default=1024, help="StyleGAN size of the stand-in weights")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--profile-rows", type=int, default=15, help="rows of the profiler table (0: no profile)")
    a = ap.parse_args()
    tmp = None
    if a.model is None:
        from clipinverter_core.weights.standin import make_standin_bundle
        tmp = tempfile.TemporaryDirectory(prefix="clipinverter-breakdown-")
        a.model = os.path.join(tmp.name, "standin.safetensors")
        make_standin_bundle(a.model, a.size, seed=0)
    model = CLIPInverter.from_bundle(a.model, a.device)
    print(f"{cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads, size {model.size}, "
          f"batch {a.batch}, fast path, float32")
    print(f"{'stage':<32}{'GMAC':>9}{'peak MiB above idle':>22}")
    with torch.inference_mode():
        fns = stages(model, a.batch)
        for name, fn in fns.items():
            print(f"{name:<32}{gmac(fn):>9.1f}{peak_mib(fn, model.device):>22.0f}", flush=True)
        if a.device == "cpu":
            print(f"dense 3x3 conv, 512 ch at 64^2: {dense_conv_gmac_per_s():.0f} GMAC/s")
        if a.profile_rows:
            profile(fns["whole edit"], a.profile_rows)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
