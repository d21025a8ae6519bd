"""Cost per image of each metric on the CPU, against the edit itself (the reference) measured in the same run.

    python bench/metrics_bench.py --bundle standin256.safetensors --lossnets DIR --inception FILE [--batch 8]

DIR holds model_ir_se50.pth and alexnet-owt-7be5be79.pth (stand-ins time the same as the real files: same
layers, same shapes). Prints a table and, last, one JSON line. Each row is the median of --repeats rounds after
one warm-up round, divided by the batch size.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from clipinverter_core.lossnets import load_arcface, load_lpips  # noqa: E402
from clipinverter_core.metrics import fidelity, scores  # noqa: E402
from clipinverter_core.pipeline import CLIPInverter  # noqa: E402

FID_SET = 100  # images per set for the FID/KID row (cost per image = the set's cost / FID_SET)


def _time(fn, repeats: int) -> float:
    fn()
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--lossnets", required=True)
    ap.add_argument("--inception", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.manual_seed(0)
    model = CLIPInverter.from_bundle(a.bundle, "cpu")
    arcface = load_arcface(os.path.join(a.lossnets, "model_ir_se50.pth"))
    lpips = load_lpips(os.path.join(a.lossnets, "alexnet-owt-7be5be79.pth"))
    inception = fidelity.load_inception(a.inception)
    b = a.batch
    x = torch.rand(b, 3, 256, 256) * 2 - 1
    y = torch.rand(b, 3, model.size, model.size) * 2 - 1
    t = model.encode_text(["this person has blonde hair"] * b)
    emb = torch.randn(b, 512)
    feats = torch.randn(FID_SET, 2048).abs()
    rows = {
        "edit (reference): features + adapter + remap + decode": lambda: model.edit(x, t),
        "CLIP image embedding (ViT-B/32, 224)": lambda: scores.image_embeddings(model.clip, y),
        "clip_score + directional (on embeddings)": lambda: (scores.clip_score(emb, emb),
                                                             scores.directional_similarity(emb, emb, emb, emb)),
        "identity: ArcFace IR-SE50, both images": lambda: scores.identity_similarity(arcface, x, y),
        "LPIPS AlexNet (256)": lambda: scores.lpips_distance(lpips, x, y),
        "Inception-v3 features (299)": lambda: fidelity.inception_features(inception, y),
    }
    with torch.inference_mode():
        per_image = {name: _time(fn, a.repeats) / b for name, fn in rows.items()}
        per_image[f"FID + KID of two sets of {FID_SET} (per image)"] = \
            _time(lambda: fidelity.fid_kid(feats, feats.flip(0) + 0.1), a.repeats) / FID_SET
    ref = per_image["edit (reference): features + adapter + remap + decode"]
    print(f"CPU, {torch.get_num_threads()} threads, batch {b}, StyleGAN size {model.size}")
    print(f"{'metric':<58}{'ms / image':>12}{'x edit':>9}")
    for name, s in per_image.items():
        print(f"{name:<58}{1000 * s:>12.1f}{s / ref:>9.3f}")
    print(json.dumps({"threads": torch.get_num_threads(), "batch": b, "size": model.size,
                      "ms_per_image": {k: round(1000 * v, 2) for k, v in per_image.items()}}))


if __name__ == "__main__":
    main()
