"""A guard for device-safe code: run a hot path on PyTorch's `meta` device (no data, no GPU needed) inside
`DeviceGuard(...)` and it records every way the code could stall or break a GPU:

- a tensor on another device (a constant made on the CPU, a buffer left behind): every tensor that an aten op
  reads or writes must be on the guarded device;
- a host round trip: `.cpu()`, `.numpy()`, `.item()`, `.tolist()`, `bool(t)` / `float(t)` / `int(t)`, `.to('cpu')`;
- a tensor built from host data in the hot path (`torch.tensor`, `as_tensor`, `from_numpy`, `new_tensor`, indexing
  with a Python list): a blocking host-to-device copy per call, illegal inside CUDA-graph capture;
- float64 anywhere (MPS has none; on CUDA it runs at 1/64 rate).

The project's named crossings (`clipinverter_core.devices.to_device` / `to_host`, and any function a test names,
such as the tokenizer) are let through by `allow(module, name)`, which counts their calls. On meta, `to_host`
cannot copy data out, so the allowed crossing returns CPU zeros of the right shape and dtype.

Every aten op's output dtype is recorded (`ops`), so tests can check that the computation follows the precision.

`host="work"` is for code that also handles host tensors (the nodes: ComfyUI's IMAGE inputs and outputs live
on the CPU): ops on host tensors alone are allowed, but every crossing must go through an allowed function, and
nothing may compute on host and device tensors together. `host="constants"` also lets host constants be copied
up anywhere (align.py's geometry: numpy matrices); reads back to the host stay forbidden.
"""
from __future__ import annotations

import contextlib
import functools
from collections import Counter

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

HOST_DATA = {torch.tensor, torch.as_tensor, torch.from_numpy, torch.Tensor.new_tensor}
HOST_READS = {torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__bool__,
              torch.Tensor.__float__, torch.Tensor.__int__, torch.Tensor.__index__}
INDEXING = {torch.Tensor.__getitem__, torch.Tensor.__setitem__}


def _name(func) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or str(func)


def _has_list_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, (list, tuple)) for i in items)


def _on(t, device) -> bool:
    return isinstance(t, torch.Tensor) and t.device == device


def _to_cpu(args, kwargs) -> bool:
    dev = kwargs.get("device")
    for a in args[1:]:
        if isinstance(a, (str, torch.device)):
            dev = a
    return dev is not None and torch.device(dev).type == "cpu"


class _Functions(TorchFunctionMode):
    def __init__(self, guard: "DeviceGuard"):
        super().__init__()
        self.guard = guard

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        g = self.guard
        if not g.suspended:
            on_device = g.host == "none" or (args and _on(args[0], g.device))  # host work on host tensors is allowed
            if func in HOST_READS and on_device:
                g.violation(f"read back to the host: {_name(func)}")
            elif func in INDEXING and len(args) > 1 and _has_list_index(args[1]) and on_device:
                g.violation("indexing with a Python list (copied to the device on every call)")
            elif func is torch.Tensor.to and _to_cpu(args, kwargs) and on_device:
                g.violation("moved to the CPU: Tensor.to('cpu')")
        out = func(*args, **kwargs)
        if not g.suspended and func in HOST_DATA and (g.host == "none" or (g.host == "work" and _on(out, g.device))):
            g.violation(f"tensor built from host data: {_name(func)}")
        return out


class _Dispatch(TorchDispatchMode):
    def __init__(self, guard: "DeviceGuard"):
        super().__init__()
        self.guard = guard

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        g = self.guard
        if not g.suspended:
            ins = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
            outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
            if g.host != "none" and all(t.device.type == "cpu" for t in ins + outs):
                return out  # host work on host tensors
            if g.host == "constants" and all(t.device.type == "cpu" for t in ins) and \
                    func.overloadpacket.__name__ in ("_to_copy", "copy_"):
                return out  # a host constant copied up
            for t in ins + outs:
                if t.device != g.device:
                    g.violation(f"{func}: a tensor on {t.device} (expected {g.device})")
                    break
                if t.dtype == torch.float64:
                    g.violation(f"{func}: float64")
                    break
            g.ops.append((str(func.overloadpacket.__name__), [t.dtype for t in outs], [tuple(t.shape) for t in outs]))
        return out


def _empty_like_on_cpu(t):
    return torch.zeros(t.shape, dtype=t.dtype, device="cpu") if isinstance(t, torch.Tensor) else t


class DeviceGuard:
    """with DeviceGuard("meta") as g: ...;  g.violations lists what broke the rules (empty: device-safe)."""

    def __init__(self, device: str | torch.device = "meta", host: str = "none"):
        assert host in ("none", "work", "constants"), host
        self.device, self.host = torch.device(device), host
        self.violations: list[str] = []
        self.ops: list[tuple[str, list, list]] = []
        self.crossings: Counter = Counter()
        self.suspended = 0
        self._stack = contextlib.ExitStack()

    def violation(self, what: str) -> None:
        self.violations.append(what)

    @contextlib.contextmanager
    def allowed(self, name: str):
        self.crossings[name] += 1
        self.suspended += 1
        try:
            yield
        finally:
            self.suspended -= 1

    def allow(self, monkeypatch, owner, attr: str, name: str | None = None, fake_host: bool = False) -> None:
        """Lets `owner.attr` cross the host boundary (counted under `name`). fake_host: the function copies to
        the host, which meta tensors cannot: return CPU zeros of its output's shapes instead."""
        fn = getattr(owner, attr)
        name = name or attr

        @functools.wraps(fn)
        def crossing(*args, **kwargs):
            moves = any(isinstance(t, torch.Tensor) and t.device != self.device for t in tree_flatten(args)[0])
            with self.allowed(name if moves or fake_host or not isinstance(args[0], torch.Tensor) else "no-op"):
                if fake_host:
                    moved = args[0]
                    dtype = kwargs.get("dtype", args[1] if len(args) > 1 else torch.float32)
                    for t in tree_flatten(moved)[0]:
                        if isinstance(t, torch.Tensor) and t.device != self.device:
                            self.violation(f"{name}: given a tensor on {t.device}")
                    return tree_map(lambda t: _empty_like_on_cpu(t.to(dtype) if dtype else t)
                                    if isinstance(t, torch.Tensor) else t, moved)
                return fn(*args, **kwargs)
        monkeypatch.setattr(owner, attr, crossing)

    def dtypes_of(self, op: str) -> list[torch.dtype]:
        return [d for name, dts, _ in self.ops if name == op for d in dts]

    def __enter__(self):
        self._stack.enter_context(_Functions(self))
        self._stack.enter_context(_Dispatch(self))
        return self

    def __exit__(self, *exc):
        self._stack.close()
        return False
