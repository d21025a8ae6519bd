"""Where tensors cross between the host and the compute device, and every backend-specific call, in one place.

Hot paths (the edit, encode_image, the nodes' batch loops) compute on one device and never read values back:
inputs go up once through `to_device`, results come down once through `to_host`, and nothing else in them calls
`.cpu()`, `.item()`, `.numpy()` or builds tensors from host data (`tests/test_device_safety.py` runs them on
PyTorch's `meta` device under a guard that fails on any of that).

Every `torch.cuda` / `torch.mps` call of the project is here, each behind a check of the device type, so that
CPU and MPS runs (and CUDA-less builds of torch) never touch the CUDA runtime.
"""
from __future__ import annotations

import gc

import torch


def to_device(x: torch.Tensor, device: torch.device | str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Host -> device (a no-op for a tensor already there): the one place inputs go up."""
    return x.to(device=device, dtype=dtype, non_blocking=False)


def to_host(tree, dtype: torch.dtype | None = torch.float32):
    """Device -> host for a tensor or any nest of tensors (tuples, lists, dicts, dataclass-free pytrees): the one
    place results come down. One call per batch chunk, so one synchronisation per chunk."""
    def down(t):
        return t.to("cpu", dtype) if isinstance(t, torch.Tensor) else t
    return torch.utils._pytree.tree_map(down, tree)


def synchronize(device: torch.device | str) -> None:
    """Waits for the device's queued work (timing); nothing on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def empty_cache() -> None:
    """Returns the caching allocators' free blocks (after an out-of-memory error)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        torch.mps.empty_cache()


def is_out_of_memory(e: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA, XPU), or the RuntimeError MPS and older CUDA builds raise instead."""
    if isinstance(e, torch.OutOfMemoryError):
        return True
    return isinstance(e, RuntimeError) and "out of memory" in str(e).lower()


class PeakMemory:
    """Context manager: the device allocator's peak above the level at entry, in bytes (`.peak`); 0 where the
    device has no allocator statistics (CPU, meta: bench.py samples the resident set there)."""

    def __init__(self, device: torch.device | str):
        self.device, self.peak, self.base = torch.device(device), 0, 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
        return False


def device_name(device: torch.device | str) -> str | None:
    """The accelerator's name (e.g. 'NVIDIA H200'), None on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return None


def cuda_rng_states() -> list[torch.Tensor]:
    """The random-number state of every CUDA device (none without CUDA): what a training checkpoint keeps."""
    return list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else []


def set_cuda_rng_states(states: list[torch.Tensor]) -> None:
    """Restores cuda_rng_states() when this machine has as many CUDA devices; otherwise leaves them."""
    if states and torch.cuda.is_available() and len(states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states)


def use_cuda_device(index: int) -> None:
    """Makes cuda:index this process's current device (one GPU per torchrun process)."""
    torch.cuda.set_device(index)
