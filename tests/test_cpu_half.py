"""fp16 on the CPU: float16 storage, float32 arithmetic in the matrix products and convolutions, outputs rounded to
float16 (devices.HalfStorageFloatArithmetic). PyTorch's own CPU fp16 kernels are a slow fallback on most CPUs (a
64-channel 3x3 convolution: 474 ms against 4.4 ms in float32 on a 2-core AMD EPYC); the numerics of the whole fp16
edit are checked in test_fast.py (256, CPU), on a GPU by bench/gpu_check.sh (1024), and layer dtypes at 1024 on
the meta device in test_device_safety.py."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from clipinverter_core import devices
from clipinverter_core.pipeline import CLIPInverter


def test_each_heavy_op_computes_in_float32_and_rounds_to_float16():
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(2, 8, 16, 16, generator=g).half(), torch.randn(8, 8, 3, 3, generator=g).half()
    a, b = torch.randn(2, 5, 32, generator=g).half(), torch.randn(2, 32, 7, generator=g).half()
    lin = torch.randn(6, 32, generator=g).half()
    cases = {"conv2d": (F.conv2d, (x, w), {"padding": 1}), "linear": (F.linear, (a, lin), {}),
             "bmm": (torch.bmm, (a, b), {}), "matmul": (torch.matmul, (a, b), {}),
             "attention": (F.scaled_dot_product_attention, (a, a, a), {})}
    for name, (fn, args, kwargs) in cases.items():
        with devices.arithmetic("cpu", torch.float16):
            ours = fn(*args, **kwargs)
        ref = fn(*(t.float() for t in args), **kwargs).half()
        assert ours.dtype == torch.float16 and torch.equal(ours, ref), name
    with devices.arithmetic("cpu", torch.float16):  # elementwise ops stay in float16, float32 tensors as they are
        assert (x * 2).dtype == torch.float16 and F.linear(a.float(), lin.float()).dtype == torch.float32
    assert isinstance(devices.arithmetic("cpu", torch.bfloat16), type(devices.arithmetic("meta", torch.float16)))


class _Record(TorchFunctionMode):
    """Sees each op after the modes pushed inside it have handled it: the dtypes F.linear finally computes in."""

    def __init__(self):
        super().__init__()
        self.linear: list[torch.dtype] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.linear:
            self.linear.append(args[0].dtype)
        return func(*args, **(kwargs or {}))


def test_an_fp16_model_on_the_cpu_keeps_fp16_weights_and_computes_in_float32(standin256):
    model = CLIPInverter.from_bundle(standin256, "cpu", "fp16", sections=("clip",))
    assert next(model.clip.parameters()).dtype == torch.float16
    with _Record() as rec:
        t = model.encode_text("a face with blonde hair")
    assert t.dtype == torch.float32 and torch.isfinite(t).all()
    assert rec.linear and set(rec.linear) == {torch.float32}, rec.linear
