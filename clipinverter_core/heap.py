"""Giving freed host memory back to the system while a clip streams through.

Measured (bench/video_memory.py's 1080p clip, the tracking pass): with glibc's malloc the process grew by one
float32 frame (25 MB) per frame decoded and detected, 0.67 -> 3.14 GB over 120 frames, and a 1000-frame clip was
killed for memory; the frames are freed, but glibc neither reuses nor returns those chunks (with tcmalloc the same
pass stays at 0.78 GB). malloc_trim(0) every chunk of frames returns them: the pass stayed at 0.70 GB. ComfyUI
runs on glibc's malloc, so the streaming loops release it (`streamed`, and photo.edit_frames after each chunk).

Trimming is not enough for the edit pass. glibc serves a block from mmap only above a threshold, and raises that
threshold to the size of each mmapped block freed (up to 32 MB): after the first freed float32 frame (25 MB at
1080p), frames, crops and masks all come from the heap, where the small blocks allocated between them pin its
pages. The Edit Video node's peak grew from 2.47 to 4.04 GB above the model between 100 and 1000 frames of 1080p.
`with stream_heap():` fixes the threshold at LARGE_BLOCK, so a frame-sized block is always mapped on its own and
given back whole when freed: the node's peak stays 1.8 GB above the model at 100 and at 1000 frames. The loops run
inside it. Elsewhere (macOS, Windows, musl) both do nothing.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

EVERY = 16  # frames between releases in a streaming loop (a trim of a few GB heap takes about a millisecond)
LARGE_BLOCK = 4 << 20  # bytes: the mmap threshold while streaming; a 1080p frame plane is 8 MB in float32
SETTLED_THRESHOLD = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: where its dynamic threshold ends
M_MMAP_THRESHOLD = -3  # glibc's malloc.h


@functools.lru_cache(maxsize=1)
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - both are glibc's (musl has no malloc_trim)
        return libc
    except (OSError, AttributeError):
        return None


def _malloc_trim():
    libc = _libc()
    return None if libc is None else libc.malloc_trim


@contextlib.contextmanager
def stream_heap() -> Iterator[bool]:
    """Around a streaming loop: blocks of LARGE_BLOCK or more are mmapped (glibc's mallopt(M_MMAP_THRESHOLD),
    which also stops glibc from moving the threshold); at the end the threshold is left at 32 MB, where glibc's own
    adjustment ends after the first large block, so the rest of a ComfyUI process does not pay for the
    mappings (they cost 15 to 18% of the edit pass's time on a CPU, BENCHMARKS.md). Yields True where it took effect.
    Allocators preloaded in glibc's place (tcmalloc, jemalloc) ignore it."""
    libc = _libc()
    took = libc is not None and libc.mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK) == 1
    try:
        yield took
    finally:
        if took:
            libc.mallopt(M_MMAP_THRESHOLD, SETTLED_THRESHOLD)


def streamed(items: Iterable[T]) -> Iterator[T]:
    """The items of a streaming loop (frames, or pairs of them), one at a time, inside stream_heap, with the heap
    released after every EVERY of them."""
    with stream_heap():
        for t, item in enumerate(items):
            if t and t % EVERY == 0:
                release_heap()  # glibc keeps freed frames' memory otherwise
            yield item


def release_heap() -> None:
    """Returns the heap's free pages to the system (glibc's malloc_trim(0)); a no-op where there is none."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
