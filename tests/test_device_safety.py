"""Device safety without a GPU: the edit (fast and ref; fp32, bf16, fp16), encode_text, encode_image, the CLI edit and
paste-back run on PyTorch's `meta` device under tests/device_guard.py, which fails on a tensor left on another
device, a read back to the host, a tensor built from host data in the hot path, float64, or a dtype that does not
follow the precision. The host crossings are named: `devices.to_device` / `to_host`, the tokenizer (text is host
data), and align.py's geometry constants for paste-back. Also: the filter taps are buffers, the remapper keeps
one copy of its weights through Module.to(), and every torch.cuda call sits behind a device check."""
from __future__ import annotations

import ast
import json
import os

import numpy as np
import pytest
import torch

from clipinverter_core import devices
from clipinverter_core.networks import CLIPAdapter, Encoder4Editing, Generator, LEVELS, n_latent_for
from clipinverter_core.networks import clip as clip_module
from clipinverter_core.networks.stylegan2 import Upsample
from clipinverter_core.ops.upfirdn2d import prepare_taps, upfirdn2d
from clipinverter_core.pipeline import CLIPInverter, PRECISIONS
from clipinverter_core.weights.bundle import Bundle

from conftest import ROOT
from device_guard import DeviceGuard

META = torch.device("meta")
SIZE = 256
LOW_FROM = 64  # stylegan2.LOW_PRECISION_FROM: fused bf16/fp16 maps from this side up


def meta_bundle(size: int = SIZE) -> Bundle:
    """A bundle of shapes without values: every network's state dict built on the meta device."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    n = n_latent_for(size)
    with torch.device("meta"):
        nets = {"encoder.": Encoder4Editing(n), "adapter.": CLIPAdapter(LEVELS), "generator.": Generator(size),
                "clip.": CLIP(512, vision_cfg=CLIPVisionCfg(layers=12, width=768, patch_size=32, image_size=224),
                              text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=512, heads=8,
                                                   layers=12), quick_gelu=True)}
        tensors = {p + k: v for p, m in nets.items() for k, v in m.state_dict().items()}
        tensors["latent_avg"] = torch.empty(n, 512)
    return Bundle("meta", {"stylegan_size": str(size), "adapter_levels": json.dumps(list(LEVELS))}, tensors)


@pytest.fixture(scope="module")
def bundle():
    return meta_bundle()


@pytest.fixture
def guard(monkeypatch):
    """A DeviceGuard on meta with the project's named crossings let through (and counted)."""
    g = DeviceGuard(META)
    g.allow(monkeypatch, devices, "to_device")
    g.allow(monkeypatch, devices, "to_host", fake_host=True)
    g.allow(monkeypatch, clip_module.Tokenizer, "__call__", "tokenizer")
    return g


RGB_SKIP_PHASES = 3 * 2 ** 2  # the RGB skip's x2 upsampling: 3 channels x 4 polyphase outputs


def _conv_dtypes(g: DeviceGuard) -> dict[str, set]:
    """Dtypes of the convolutions the guard saw: 'high' (output side >= 64 px), 'low' (below), and 'skip' (the
    RGB skip's upsampling, which the fast path keeps in float32 like the RGB sums)."""
    seen = {"high": set(), "low": set(), "skip": set()}
    for name, dts, shapes in g.ops:
        if name in ("convolution", "conv2d", "conv_transpose2d"):
            key = "skip" if shapes[0][1] == RGB_SKIP_PHASES else "high" if shapes[0][-1] >= LOW_FROM else "low"
            seen[key] |= set(dts)
    return seen


_bundles: dict[int, Bundle] = {}


@pytest.mark.parametrize("impl", ["fast", "ref"])
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("size", [SIZE, 1024])  # 1024: the dtype discipline of the size whose fp16 numerics
def test_the_edit_runs_on_the_device_alone_in_the_precision_asked(guard, impl, precision, size):  # gpu_check runs
    bundle = _bundles[size] if size in _bundles else _bundles.setdefault(size, meta_bundle(size))
    model = CLIPInverter(bundle, META, precision, impl)
    low = PRECISIONS[precision]
    mixed = impl == "fast" and precision != "fp32"
    enc_dtype = torch.float32 if mixed and precision == "bf16" else low
    x = torch.empty(3, 3, 256, 256, device=META)
    t = torch.empty(1, 512, device=META)
    with guard:
        feats = model.features(x)
        w, w_hat = model.edit_features(feats, t)
    assert guard.violations == []
    assert set().union(*_conv_dtypes(guard).values()) == {enc_dtype}, "encoder convolutions"
    with DeviceGuard(META) as g2:
        latent = model.remap(w_hat, t.expand(3, 512))
        image = model.decode(latent)
    assert g2.violations == []
    convs = _conv_dtypes(g2)
    if mixed:  # float32 below 64 px and for the RGB skip, the precision from 64 px up
        assert convs == {"high": {low}, "low": {torch.float32}, "skip": {torch.float32}}
    else:  # the reference's skip upsampling is single-plane (not the polyphase form): counted in high/low
        assert convs["high"] == convs["low"] == {low} and convs["skip"] <= {low}
    with DeviceGuard(META) as g3:
        r = model.edit(x, t, levels=("coarse", "fine"))
    assert g3.violations == []
    for out in (r.text_embedding, r.w, r.w_hat, r.image):
        assert out.device == META and out.dtype == torch.float32
    assert image.shape == r.image.shape == (3, 3, size, size)


def test_encode_text_and_image_on_the_device(bundle, guard):
    model = CLIPInverter(bundle, META, "fp16")
    model.clip  # built outside the guard (loading is not the hot path)
    with guard:
        t = model.encode_text(["a", "b"])
        e = model.encode_image(torch.empty(2, 3, 300, 200, device=META))
    assert guard.violations == []
    assert guard.crossings["tokenizer"] == 1 and guard.crossings["to_device"] >= 1
    assert _conv_dtypes(guard)["low"] == {torch.float16}  # the patch embedding, in the precision
    assert t.shape == e.shape == (2, 512) and t.dtype == e.dtype == torch.float32 and e.device == META


@pytest.mark.parametrize("broken", ["host constant", "read back", "cpu tensor", "list index"])
def test_the_guard_catches_each_mistake(broken):
    x = torch.empty(2, 3, device=META)
    with DeviceGuard(META) as g:
        try:
            if broken == "host constant":
                x * torch.tensor([1.0, 2.0, 3.0], device=META)
            elif broken == "read back":
                x.sum().item()
            elif broken == "cpu tensor":
                x + torch.ones(3)
            else:
                x[[0, 1]]
        except (RuntimeError, NotImplementedError):
            pass  # meta refuses some of them outright; the guard has recorded them before
    assert g.violations, broken


def test_paste_back_runs_on_the_device(monkeypatch):
    """align.py's public API: the alignment (dlib on the host) is made on the CPU; pasting runs on meta. Its
    geometry constants come from the host (numpy matrices): that upload is the one crossing it may make."""
    from skimage import data

    from clipinverter_core.align import align, paste_back

    photo = torch.from_numpy(data.astronaut().astype(np.float32) / 255).permute(2, 0, 1)[None]
    crops, alignment = align(photo, 64)
    g = DeviceGuard(META, host="constants")
    with g:
        out = paste_back(photo.to(META), crops.to(META), alignment)
    assert g.violations == []
    assert out.device == META and out.shape == photo.shape and out.dtype == torch.float32


def test_the_cli_edit_runs_on_the_device_and_writes_its_png_through_to_host(monkeypatch, tmp_path, standin256):
    """`edit --device meta`: the whole CLI edit on the device; the pixels and raw tensors come down through
    devices.to_host alone (the named place for PNG writing)."""
    from PIL import Image

    from clipinverter_core.__main__ import main

    face = tmp_path / "face.png"
    Image.new("RGB", (256, 256), (120, 90, 60)).save(face)
    g = DeviceGuard(META, host="work")
    g.allow(monkeypatch, devices, "to_device")
    g.allow(monkeypatch, devices, "to_host", fake_host=True)
    g.allow(monkeypatch, clip_module.Tokenizer, "__call__", "tokenizer")
    from clipinverter_core import pipeline
    load = pipeline.CLIPInverter.from_bundle.__func__

    def loaded_outside_the_guard(cls, *args, **kwargs):  # loading the bundle is not the hot path
        with g.allowed("load"):
            return load(cls, *args, **kwargs)
    monkeypatch.setattr(pipeline.CLIPInverter, "from_bundle", classmethod(loaded_outside_the_guard))
    g.allow(monkeypatch, clip_module, "build_clip", "load")  # CLIP is built on first use
    with g:
        code = main(["edit", "--model", standin256, "--image", str(face), "--text", "blonde", "--no-align",
                     "--device", "meta", "--precision", "fp16", "-o", str(tmp_path / "out.png"),
                     "--save-raw", str(tmp_path / "raw.safetensors")])
    assert code == 0 and g.violations == []
    assert g.crossings["to_host"] == 2 and g.crossings["load"] == 2  # down: the pixels, the raw tensors
    assert Image.open(tmp_path / "out.png").size == (256, 256)


# --- found by reading the code ----------------------------------------------------------------------------------
def test_upsampling_taps_are_buffers_that_move_with_the_module():
    up = Upsample()
    up.fuse()
    assert "taps" in dict(up.named_buffers()) and "taps" not in up.state_dict()  # derived, not saved
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(up(x), upfirdn2d(x, up.kernel, up=2, pad=up.pad, impl="ref"))
    torch.testing.assert_close(up.taps, prepare_taps(up.kernel, 2, up.pad))
    up.to(META)
    assert up.taps.device == META
    with DeviceGuard(META) as g:
        up(torch.empty(2, 3, 8, 8, device=META))
    assert g.violations == []


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata  # the StorageImpl: equal for views of one tensor, on meta too


@pytest.mark.parametrize("move", [lambda g: g.to(torch.float64), lambda g: g.to(META), lambda g: g.half()])
def test_remapper_parameters_stay_views_of_the_stacks_through_module_to(move):
    gen = Generator(32)
    for p in gen.parameters():
        torch.nn.init.normal_(p)
    gen.fuse()
    move(gen)
    for i in (0, 2, 5):
        stack, bias = getattr(gen, f"remap_weight_{i}"), getattr(gen, f"remap_bias_{i}")
        assert stack.dtype == gen.affine_mlps[0][i].weight.dtype and stack.device == gen.affine_mlps[0][i].weight.device
        for mlp in gen.affine_mlps:
            assert _storage(mlp[i].weight) == _storage(stack) and _storage(mlp[i].bias) == _storage(bias)
    if not gen.remap_weight_0.is_meta:  # and the stacks hold the parameters' values
        torch.testing.assert_close(gen.remap_weight_2[3], gen.affine_mlps[3][2].weight, rtol=0, atol=0)


# --- every torch.cuda call behind a device check -------------------------------------------------------------------
SAFE_ANYWHERE = {"is_available", "OutOfMemoryError"}


def _backend_calls(path: str) -> list[tuple[int, str]]:
    tree = ast.parse(open(path, encoding="utf-8").read())
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "torch" \
                and node.value.attr in ("cuda", "mps") and node.attr not in SAFE_ANYWHERE:
            calls.append((node.lineno, f"torch.{node.value.attr}.{node.attr}"))
    return calls


def test_torch_cuda_and_mps_calls_live_in_devices_py_alone():
    outside = []
    for folder in ("clipinverter_core", "nodes", "bench"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for f in files:
                path = os.path.join(dirpath, f)
                if f.endswith(".py") and not path.endswith(os.path.join("clipinverter_core", "devices.py")):
                    outside += [(os.path.relpath(path, ROOT), *c) for c in _backend_calls(path)]
    assert outside == []


def test_devices_py_never_touches_cuda_on_the_cpu(monkeypatch):
    used = {name for _, name in _backend_calls(devices.__file__)}
    assert used  # the scan sees them
    for name in used:
        backend, attr = name.split(".")[1:]
        monkeypatch.setattr(getattr(torch, backend), attr, lambda *a, **k: pytest.fail(f"{name} called on the CPU"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    devices.synchronize("cpu")
    devices.empty_cache()
    with devices.PeakMemory("cpu") as mem:
        torch.ones(4).sum()
    assert mem.peak == 0 and devices.device_name("cpu") is None


def test_out_of_memory_is_cuda_s_error_and_mps_s_runtime_error():
    assert devices.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert devices.is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not devices.is_out_of_memory(RuntimeError("shape mismatch"))
