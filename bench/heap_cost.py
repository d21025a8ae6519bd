"""What heap.stream_heap's fixed mmap threshold costs: `edit-video` on N frames of W x H, each threshold in a fresh
process on glibc's malloc (no tcmalloc preloaded), run one after another; wall, user and system time, peak RSS.

    python bench/heap_cost.py --model BUNDLE [--frames 40] [--size 1920 1080] [--thresholds dynamic 16 4]

"dynamic": stream_heap disabled (glibc moves its threshold itself); a number: heap.LARGE_BLOCK in MB.
The clip is bench/video_memory.py's (the astronaut along a smooth path, H.264).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, os, resource, sys, time
sys.path[:0] = [{root!r}]
import clipinverter_core.heap as heap
import clipinverter_core.photo as photo
import contextlib
if {mode!r} == "dynamic":
    photo.stream_heap = heap.stream_heap = contextlib.nullcontext
else:
    heap.LARGE_BLOCK = int({mode!r}) << 20
from clipinverter_core.__main__ import main
t0 = time.perf_counter()
rc = main(["edit-video", "--input", {clip!r}, "--text", "this person has blonde hair", "--model", {model!r},
           "-o", {out!r}, "--device", "cpu"])
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"rc": rc, "wall": time.perf_counter() - t0, "user": ru.ru_utime, "system": ru.ru_stime,
                  "peak_gb": ru.ru_maxrss / 2 ** 20}}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--size", type=int, nargs=2, default=[1920, 1080], metavar=("W", "H"))
    p.add_argument("--thresholds", nargs="+", default=["dynamic", "16", "4"])
    a = p.parse_args()
    sys.path[:0] = [os.path.join(ROOT, "bench"), os.path.join(ROOT, "tests")]
    import video_memory

    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with tempfile.TemporaryDirectory() as tmp:
        clip = os.path.join(tmp, "clip.mp4")
        video_memory.write_clip(clip, a.frames, a.size[1], a.size[0])
        print(f"# {a.frames} frames of {a.size[0]}x{a.size[1]}, {os.path.basename(a.model)}, glibc's malloc")
        print("threshold   wall (s)   user (s)   system (s)   peak RSS (GB)")
        for mode in a.thresholds:
            code = CHILD.format(root=ROOT, mode=mode, clip=clip, model=os.path.abspath(a.model),
                                out=os.path.join(tmp, f"out_{mode}.mp4"))
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
            if r.returncode != 0:
                print(r.stderr[-2000:], file=sys.stderr)
                return 1
            m = json.loads(r.stdout.strip().splitlines()[-1])
            label = mode if mode == "dynamic" else f"{mode} MB"
            print(f"{label:>9}   {m['wall']:8.1f}   {m['user']:8.1f}   {m['system']:10.1f}   {m['peak_gb']:13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
