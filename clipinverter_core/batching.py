"""Batches: the broadcast rule that pairs images with prompts (`pair_indices`, `take`), and chunks: out-of-memory
errors shrink the chunk and retry, so a batch always finishes with the same result as one pass would give (each
item is computed independently)."""
from __future__ import annotations

from typing import Callable

import torch

from .devices import empty_cache, is_out_of_memory
from .errors import InputError

__all__ = ["map_chunks", "is_out_of_memory", "pair_indices", "take", "features_once_per_face"]


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


def pair_indices(n_a: int, n_b: int, what_a: str = "images", what_b: str = "prompts"):
    """Broadcast rule: 1 x N, N x 1 and N x N pair up; other counts are an error."""
    if n_a == 0 or n_b == 0:
        raise InputError(f"empty batch: {n_a} {what_a}, {n_b} {what_b}")
    if n_a == n_b:
        return list(range(n_a)), list(range(n_b))
    if n_b == 1:
        return list(range(n_a)), [0] * n_a
    if n_a == 1:
        return [0] * n_b, list(range(n_b))
    raise InputError(f"{n_a} {what_a} and {n_b} {what_b} do not pair up: give one of either, or as many of each")


def take(x: torch.Tensor, idx: list[int]) -> torch.Tensor:
    """x[idx] along dim 0 for the index lists `pair_indices` makes (a run of indices, or one index repeated),
    as a slice or an expanded view: indexing a device tensor with a Python list would copy the list to the
    device on every call."""
    first, n = idx[0], len(idx)
    if idx == list(range(first, first + n)):
        return x[first:first + n]
    if idx == [first] * n:
        return x[first:first + 1].expand(n, *x.shape[1:])
    return x[idx]


def features_once_per_face(features: Callable, x, idx: list[int], prepare: Callable | None = None):
    """features(prepare(x[idx])), with one backbone pass for a chunk that repeats one face (one photo edited N
    ways): the pass runs on that face alone and its maps are expanded to the N rows (views, not copies). The
    API, the CLI and the nodes all edit through here."""
    prepare = prepare or (lambda t: t)
    if len(idx) > 1 and idx == [idx[0]] * len(idx):
        one = features(prepare(x[idx[0]:idx[0] + 1]))
        return type(one)(*(f.expand(len(idx), *f.shape[1:]) for f in one))
    return features(prepare(take(x, idx)))
