"""Where tensors cross between the host and the compute device, and every backend-specific call, in one place.

Hot paths (the edit, encode_image, the nodes' batch loops) compute on one device and never read values back:
inputs go up once through `to_device`, results come down once through `to_host`, and nothing else in them calls
`.cpu()`, `.item()`, `.numpy()` or builds tensors from host data (`tests/test_device_safety.py` runs them on
PyTorch's `meta` device under a guard that fails on any of that).

Every `torch.cuda` / `torch.mps` call of the project is here, each behind a check of the device type, so that
CPU and MPS runs (and CUDA-less builds of torch) never touch the CUDA runtime.
"""
from __future__ import annotations

import contextlib
import functools
import gc

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


def default_device(mps: bool = True) -> str:
    """The device used when none is named: CUDA, then Apple's MPS (`mps=False`: training, whose float64 and DDP
    need CUDA or the CPU), then the CPU."""
    if torch.cuda.is_available():
        return "cuda"
    if mps and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def auto_precision(device: torch.device | str) -> str:
    """precision 'auto' outside ComfyUI (the nodes ask ComfyUI's model management instead): bf16 on a CUDA GPU that
    computes it natively, fp16 on an older one (both within 1e-2 of fp32: tests/test_fast.py), fp32 elsewhere (the
    CPU, where low precision is no faster, and MPS)."""
    device = torch.device(device)
    if device.type != "cuda":
        return "fp32"
    if torch.version.hip:  # every ROCm GPU PyTorch supports computes bf16
        return "bf16"
    return "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"  # Ampere and later


def usable_device(name: str) -> torch.device:
    """The device a user named, if this machine and this build of torch have it; else one line saying what is
    here (InputError). `meta` is accepted: the device-safety tests run commands on it."""
    from .errors import InputError

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(f"unknown device {name!r}: use cpu, cuda, cuda:N or mps") from None
    build = f"torch {torch.__version__}, " + (f"built for CUDA {torch.version.cuda}" if torch.version.cuda
                                               else "a build without CUDA")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"no CUDA device here ({build}); use --device cpu")
        if device.index is not None and device.index >= count:
            raise InputError(f"no CUDA device {device.index} here (this machine has {count}: "
                             f"cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})")
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InputError(f"no Apple MPS device here ({build}); use --device cpu")
    elif device.type not in ("cpu", "meta"):
        raise InputError(f"the device {name!r} is not one this project runs on: use cpu, cuda, cuda:N or mps")
    return device


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


class HalfStorageFloatArithmetic(TorchFunctionMode):
    """fp16 on the CPU: tensors stay float16 (half the memory), the matrix products and convolutions compute in
    float32 and round their outputs to float16, as a GPU's fp16 kernels do (they accumulate in float32).

    PyTorch's own CPU fp16 kernels are a slow fallback on CPUs without native fp16 arithmetic (measured on a 2-core
    AMD EPYC: a 64-channel 3x3 convolution at 64x64 takes 474 ms in fp16 against 4.4 ms in float32; a linear layer
    4x, bmm 30x, a transposed convolution 5.5x), and an edit at 256 took minutes. Elementwise ops are vectorised in
    fp16 and stay as they are."""

    OPS = frozenset({F.conv1d, F.conv2d, F.conv_transpose2d, F.linear, F.scaled_dot_product_attention, F.layer_norm,
                     torch.matmul, torch.mm, torch.bmm, torch.addmm, torch.baddbmm, torch.einsum,
                     torch.Tensor.matmul, torch.Tensor.__matmul__, torch.Tensor.mm, torch.Tensor.bmm})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tree = torch.utils._pytree
        if func not in self.OPS or not any(_cpu_half(t) for t in tree.tree_leaves((args, kwargs))):
            return func(*args, **kwargs)
        args, kwargs = tree.tree_map(lambda t: t.float() if _cpu_half(t) else t, (args, kwargs))
        out = func(*args, **kwargs)
        return tree.tree_map(lambda t: t.half() if isinstance(t, torch.Tensor) and t.dtype == torch.float32 else t, out)


def _cpu_half(t) -> bool:
    return isinstance(t, torch.Tensor) and t.dtype == torch.float16 and t.device.type == "cpu"


def arithmetic(device: torch.device | str, dtype: torch.dtype):
    """The context an inference in `dtype` on `device` runs in: HalfStorageFloatArithmetic for fp16 on the CPU,
    nothing otherwise."""
    if torch.device(device).type == "cpu" and dtype == torch.float16:
        return HalfStorageFloatArithmetic()
    return contextlib.nullcontext()


def inference(method):
    """Decorates a method of an object with `.device` and `.dtype`: torch.inference_mode, in arithmetic()."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with torch.inference_mode(), arithmetic(self.device, self.dtype):
            return method(self, *args, **kwargs)
    return run
