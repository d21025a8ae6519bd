"""Runs a command and reports the peak of the summed RSS of it and all its descendants (Linux /proc).

    python3 scripts/tree_rss.py -- bash scripts/test.sh

CI's memory is the sum over processes: with two test workers (tests/lanes.py), /usr/bin/time's "maximum resident
set size" is only the largest single process. Sampled every 0.5 s: a spike shorter than that can be missed (the
suite's peaks last tens of seconds). Pages two processes share (a fork's, libraries) are counted in each, so the
figure errs high. Standard library only: it runs before the virtual environment exists. Exits with the command's
status.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

INTERVAL = 0.5


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
    except OSError:
        return 0


def tree_rss_kb(root: int) -> tuple[int, int]:
    """(summed RSS in kB, processes) of `root` and its descendants now."""
    kids, total, count, todo = _children(), 0, 0, [root]
    while todo:
        pid = todo.pop()
        total += _rss_kb(pid)
        count += 1
        todo += kids.get(pid, [])
    return total, count


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__)
        return 2
    proc = subprocess.Popen(argv)
    peak = [0, 0, 0.0]  # kB, processes then, seconds from the start
    start = time.monotonic()

    def sample():
        while proc.poll() is None:
            kb, n = tree_rss_kb(proc.pid)
            if kb > peak[0]:
                peak[:] = [kb, n, time.monotonic() - start]
            time.sleep(INTERVAL)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = proc.wait()
    sampler.join()
    print(f"== peak RSS summed over the command's processes: {peak[0] / 2 ** 20:.2f} GB "
          f"({peak[1]} processes, at {peak[2] / 60:.1f} min of {(time.monotonic() - start) / 60:.1f})", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
