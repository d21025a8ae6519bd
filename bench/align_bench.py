"""Alignment of a 12-megapixel photo: our path (dlib detection on a reduced copy + landmarks at full
resolution + torch/kornia geometry) against the official-style reference path (dlib with one 2x
upsampling on the full photo + the PIL/numpy recipe of tests/official_align.py), in one run.

    python bench/align_bench.py [--threads 2] [--repeat 5]

The photo is scikit-image's astronaut, cropped to 4:3 and enlarged 8x to 4000x3000 (face quad ~1400 px).
`--near-edge` crops it so that the face touches the top edge (the reflect-pad-and-blur step runs).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

# Threads that sleep instead of spinning when they wait: on a shared, loaded machine spinning OpenMP threads
# make 2-thread runs several times slower than 1-thread runs. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402


def photo_12mp(near_edge: bool) -> np.ndarray:
    from skimage import data

    a = data.astronaut()
    # 4:3, the face ~1400 px wide, in the upper middle (or touching the top edge)
    a = a[60:435, 0:500] if near_edge else np.pad(a[0:315, 0:500], ((60, 0), (0, 0), (0, 0)), mode="reflect")
    return np.asarray(Image.fromarray(a).resize((4000, 3000), Image.BICUBIC))


CPU = {}


def timed(fn, repeat: int) -> tuple[float, object]:
    """Median wall time; the median process CPU time (all threads) goes to CPU[fn]."""
    out = fn()  # warm-up (imports, model loading)
    times, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    CPU[fn] = statistics.median(cpu)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--near-edge", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from clipinverter_core import align as A
    from official_align import official_align, official_landmarks

    img = photo_12mp(a.near_edge)
    photo = A.to_unit_tensor(img)
    pil = Image.fromarray(img)
    ours = lambda: A.align(photo, 256)  # noqa: E731
    t_ours, (crop, al) = timed(ours, a.repeat)
    faces = A.detect_faces(photo[0])
    geom = lambda: A.align(photo, 256, faces=[faces])  # noqa: E731
    t_geom, _ = timed(geom, a.repeat)
    lm = faces[0].landmarks
    ref_geom = lambda: official_align(pil, lm, 256, 256)  # noqa: E731
    t_ref_geom, ref = timed(ref_geom, a.repeat)
    t0, c0 = time.perf_counter(), time.process_time()
    ref_lm = official_landmarks(img)
    t_ref_detect, c_ref_detect = time.perf_counter() - t0, time.process_time() - c0
    err = np.abs(crop[0].permute(1, 2, 0).numpy() * 255 - np.asarray(ref, np.float64)).mean()
    quad = A.ffhq_quad(lm)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
          f"torch {torch.__version__}, {a.threads} threads, load average {os.getloadavg()[0]:.1f}")
    print(f"photo: {img.shape[1]}x{img.shape[0]}, face quad {np.hypot(*(quad[3] - quad[0])):.0f} px, "
          f"quad top at y = {quad[:, 1].min():.0f} ({'beyond the edge: pad + blur' if quad[:, 1].min() < 0 else 'inside the photo'})")
    ref_total, ref_cpu = t_ref_detect + t_ref_geom, c_ref_detect + CPU[ref_geom]
    print("                                  wall       CPU   (medians of %d)" % a.repeat)
    print(f"ours      align() total        {t_ours * 1000:7.0f} ms {CPU[ours] * 1000:7.0f} ms")
    print(f"ours      geometry only        {t_geom * 1000:7.0f} ms {CPU[geom] * 1000:7.0f} ms")
    print(f"reference PIL recipe geometry  {t_ref_geom * 1000:7.0f} ms {CPU[ref_geom] * 1000:7.0f} ms"
          f"  -> ours/ref {t_geom / t_ref_geom:.2f} wall, {CPU[geom] / CPU[ref_geom]:.2f} CPU")
    print(f"reference official detection   {t_ref_detect * 1000:7.0f} ms {c_ref_detect * 1000:7.0f} ms"
          "  (one run: the full photo, 2x upsampling)")
    print(f"reference total                {ref_total * 1000:7.0f} ms {ref_cpu * 1000:7.0f} ms"
          f"  -> ours/ref {t_ours / ref_total:.2f} wall, {CPU[ours] / ref_cpu:.2f} CPU")
    print(f"crop vs reference crop (same landmarks): mean |diff| {err:.2f}/255; "
          f"official landmarks found: {ref_lm is not None}")


if __name__ == "__main__":
    main()
