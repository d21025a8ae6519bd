"""Batches in chunks: out-of-memory errors shrink the chunk and retry, so a batch always finishes with the
same result as one pass would give (each item is computed independently)."""
from __future__ import annotations

from typing import Callable

from .devices import empty_cache, is_out_of_memory

__all__ = ["map_chunks", "is_out_of_memory"]


def map_chunks(fn: Callable[[int, int], object], n: int, chunk: int | None = None,
               progress: Callable[[int, int], None] | None = None, check: Callable[[], None] | None = None) -> list:
    """Calls fn(start, stop) over [0, n) in chunks of `chunk` (default: all at once), halving the chunk on
    out-of-memory errors. `progress(done, n)` after each chunk; `check()` before each (e.g. to cancel)."""
    size = max(1, chunk or n)
    outs, start = [], 0
    while start < n:
        if check is not None:
            check()
        stop = min(start + size, n)
        try:
            outs.append(fn(start, stop))
        except Exception as e:
            if not is_out_of_memory(e) or size == 1:
                raise
            empty_cache()
            size = max(1, (stop - start + 1) // 2)
            continue
        start = stop
        if progress is not None:
            progress(start, n)
    return outs
