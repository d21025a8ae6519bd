"""The peak memory of a whole test run: samples the resident memory of a process and all its descendants, summed,
every 0.2 s, until SIGTERM; then prints the largest sum and what made it up.

scripts/test.sh runs pytest processes side by side, and the tests start CLI runs and servers: the peak RSS of any
one process (GNU time's figure) says nothing of their sum, which is what has to fit the machine. Summed RSS counts
the pages that processes share (the libraries' code) once per process, so it overstates a little; it never
understates what was resident at a sampled moment.

    python scripts/peak_rss.py ROOT_PID"""
from __future__ import annotations

import os
import signal
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(root: int) -> list[tuple[int, int, str]]:
    """(rss bytes, pid, name) of `root` and every process below it, this sampler excepted."""
    procs: dict[int, tuple[int, int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:  # it ended meanwhile
            continue
        name = stat[stat.find("(") + 1:stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2:].split()
        procs[int(entry)] = (int(fields[1]), int(fields[21]) * PAGE, name)  # ppid, rss, name
    out = []
    for pid, (_, rss, name) in procs.items():
        p = pid
        while p in procs and p != root:
            p = procs[p][0]
        if p == root and pid != os.getpid():
            out.append((rss, pid, name))
    return out


def main() -> None:
    root = int(sys.argv[1])
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    peak, at, parts = 0, "", []
    while not stop:
        procs = tree_rss(root)
        total = sum(r for r, _, _ in procs)
        if total > peak:
            peak, at, parts = total, time.strftime("%H:%M:%S"), sorted(procs, reverse=True)
        time.sleep(0.2)
    shown = ", ".join(f"{name} {pid} {rss / 2 ** 30:.2f}" for rss, pid, name in parts[:4])
    print(f"== peak RSS of the whole run, every process summed (sampled every 0.2 s): {peak / 2 ** 30:.2f} GB "
          f"at {at}, {len(parts)} processes ({shown}{', ...' if len(parts) > 4 else ''} GB)", flush=True)


if __name__ == "__main__":
    main()
