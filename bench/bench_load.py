"""Loading speed: opening a bundle vs torch.load of the official files it was converted from.

    python bench/bench_load.py --official DIR --bundle B.safetensors [--repeats 5]

DIR holds pretrained_faces.pt, e4e_ffhq_encode.pt and ViT-B-32.pt. Both paths run in this process,
interleaved, from a warm page cache (each file is read once before timing). The reference path is what the
official code does before it can build its networks: torch.load of each file onto the CPU
(weights_only=True here, which is what torch >= 2.6 does by default). Ours is everything up to ready
modules: CLIPInverter.from_bundle plus building CLIP, on the CPU in float32, with the networks in the official
formulation (impl="ref"). The bundle is memory-mapped, so its pages are read on first use;
`bundle_open_touch_all` adds one read of every weight to show that cost, and `bundle_open_fast_path` is the
default impl="fast", which also folds and re-lays out weights for the fused CPU path at load time.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from clipinverter_core.pipeline import CLIPInverter  # noqa: E402

FILES = ("pretrained_faces.pt", "e4e_ffhq_encode.pt", "ViT-B-32.pt")


def official(folder):
    return [torch.load(os.path.join(folder, f), map_location="cpu", weights_only=True) for f in FILES]


def ours(bundle, impl="ref"):
    model = CLIPInverter.from_bundle(bundle, "cpu", "fp32", impl=impl)
    model.clip  # noqa: B018 - CLIP is built on first use; count it
    return model


def ours_touched(bundle):
    """Ours, plus one read of every weight: pages the memory map in, as a first edit would."""
    model = ours(bundle)
    for mod in (model.encoder, model.adapter, model.generator, model.clip):
        for p in mod.parameters():
            p.sum()
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    for path in [os.path.join(a.official, f) for f in FILES] + [a.bundle]:
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass
    paths = {"official_torch_load": lambda: official(a.official), "bundle_open": lambda: ours(a.bundle),
             "bundle_open_touch_all": lambda: ours_touched(a.bundle),
             "bundle_open_fast_path": lambda: ours(a.bundle, "fast")}
    times = {k: [] for k in paths}
    for _ in range(a.repeats):
        for name, fn in paths.items():
            t0 = time.perf_counter()
            r = fn()
            times[name].append(time.perf_counter() - t0)
            del r
    med = {k: statistics.median(v) for k, v in times.items()}
    sizes = {"official_bytes": sum(os.path.getsize(os.path.join(a.official, f)) for f in FILES),
             "bundle_bytes": os.path.getsize(a.bundle)}
    print(f"{'path':<22}{'median s':>10}{'min s':>10}{'max s':>10}")
    for k, v in times.items():
        print(f"{k:<22}{med[k]:>10.3f}{min(v):>10.3f}{max(v):>10.3f}")
    print(f"speedup (official / bundle_open): {med['official_torch_load'] / med['bundle_open']:.1f}x")
    for k in ("bundle_open_touch_all", "bundle_open_fast_path"):
        print(f"speedup (official / {k}): {med['official_torch_load'] / med[k]:.1f}x")
    print(json.dumps({"median_s": med, "speedup": med["official_torch_load"] / med["bundle_open"], **sizes,
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
