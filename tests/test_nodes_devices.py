"""The nodes on a compute device that is not the CPU, without a GPU: ComfyUI's stand-ins report PyTorch's `meta`
device as the compute device and the CPU as the offload and intermediate devices. Every node runs under the
device guard (tests/device_guard.py): models move through the ModelPatcher, in the chosen dtype; IMAGE and the
other socket values arrive on the CPU and go back there, once per chunk, through devices.to_device/to_host alone.
The chunked batch loop (nodes/memory.run_chunks) is checked on the CPU, on real values."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

import comfy_stubs
from comfy_stubs import RECORD
from conftest import rel_l2
from device_guard import DeviceGuard

META, CPU = torch.device("meta"), torch.device("cpu")
BUNDLE = "clipinverter_faces.safetensors"
PACK = "custom_nodes_clipinverter_devices"
PRECISION = "fp16"  # mixed on the fast path: float32 generator weights, fp16 encoder and CLIP
N_FACES = 5
SAME = 1e-5  # relative L2 between chunkings: float rounding of the batch-1 and batched formulas (~1e-6)


@pytest.fixture(scope="module")
def pack(tmp_path_factory, standin256):
    base = tmp_path_factory.mktemp("comfyui_devices")
    with comfy_stubs.installed(str(base)):
        pack = comfy_stubs.load_pack(PACK)
        folder = base / "models" / "clipinverter"
        folder.mkdir(parents=True, exist_ok=True)
        os.symlink(standin256, folder / BUNDLE)
        yield pack


@pytest.fixture(autouse=True)
def _meta_devices():
    RECORD.reset()
    RECORD.devices["load"] = META
    yield
    RECORD.reset()


def nodes_of(pack) -> dict:
    return {n.define_schema().node_id: n for n in pack.nodes.NODES}


@pytest.fixture(scope="module")
def model(pack):
    RECORD.reset()
    RECORD.devices["load"] = META
    return nodes_of(pack)["CLIPInverterLoader"].execute(BUNDLE, "default", PRECISION)[0]


@pytest.fixture
def guard(pack, monkeypatch):
    core = sys.modules[f"{PACK}.clipinverter_core.devices"]
    clip = sys.modules[f"{PACK}.clipinverter_core.networks.clip"]
    g = DeviceGuard(META, host="work")
    g.allow(monkeypatch, core, "to_device")
    g.allow(monkeypatch, core, "to_host", fake_host=True)
    g.allow(monkeypatch, clip.Tokenizer, "__call__", "tokenizer")
    g.allow(monkeypatch, pack.nodes.memory.mm, "load_models_gpu", "model load")  # ComfyUI moves the weights
    return g


def run(pack, node_id, *args):
    return nodes_of(pack)[node_id].execute(*args)[0]


def _tensors(module):
    return list(module.parameters()) + list(module.buffers())


def _expect_dtypes(model):
    """Floating dtypes of each network in fp16 (PRECISION) on the fast path: the generator keeps float32 weights."""
    assert model.inverter.precision == PRECISION == "fp16" and model.inverter.impl == "fast"
    return {"encoder": torch.float16, "adapter": torch.float16, "clip": torch.float16, "generator": torch.float32}


def test_models_move_through_the_model_patcher_in_the_chosen_dtype(pack, model, guard):
    assert model.patcher.load_device == META and model.patcher.offload_device == CPU
    assert all(t.device == CPU for t in _tensors(model.modules))  # loaded on the offload device
    with guard:
        run(pack, "CLIPInverterEncodeText", model, "a")
    assert guard.violations == []
    assert RECORD.loads and all(entry[0] == [model.patcher] and entry[2] for entry in RECORD.loads)
    assert model.inverter.device == META
    for name, dtype in _expect_dtypes(model).items():
        tensors = _tensors(getattr(model.modules, name))
        assert all(t.device == META for t in tensors), name
        assert {t.dtype for t in tensors if t.is_floating_point()} == {dtype}, name
    # ComfyUI needs the room: the patcher moves everything to the offload device, in the same dtypes
    pack.nodes.memory.mm.free_memory(1e30, META)
    assert RECORD.offloads == [model.patcher]
    assert all(t.device == CPU for t in _tensors(model.modules))
    for name, dtype in _expect_dtypes(model).items():
        assert {t.dtype for t in _tensors(getattr(model.modules, name)) if t.is_floating_point()} == {dtype}
    with guard:
        run(pack, "CLIPInverterEncodeText", model, "b")
    assert all(t.device == META for t in _tensors(model.modules))


def test_the_edit_nodes_compute_on_the_device_and_hand_back_host_tensors(pack, model, guard):
    faces = torch.rand(N_FACES, 256, 256, 3)  # as ComfyUI's Load Image gives them: on the CPU
    RECORD.free_memory = int(2.5 * model.item_memory() / pack.nodes.memory.FREE_FRACTION)  # chunks of 2: 2, 2, 1
    with guard:
        t = run(pack, "CLIPInverterEncodeText", model, "a\nb\nc\nd\ne")
        latent = run(pack, "CLIPInverterInvert", model, faces, t, 1.0, True, False, True)
        plain = run(pack, "CLIPInverterInvertOnly", model, faces)
        remapped = run(pack, "CLIPInverterRemap", model, latent, t[:1], 1.0)
        pixels = run(pack, "CLIPInverterDecode", model, remapped)
        emb = run(pack, "CLIPInverterEncodeImage", model, faces, "match text")
        raw = run(pack, "CLIPInverterEncodeImage", model, faces[:1], "none")
    assert guard.violations == []
    for out, shape in ((t, (5, 512)), (latent.w, (5, 14, 512)), (plain.w, (5, 14, 512)),
                       (remapped.conv, (5, 13, 512)), (pixels, (5, 256, 256, 3)), (emb, (5, 512)), (raw, (1, 512))):
        assert out.device == CPU and out.dtype == torch.float32 and tuple(out.shape) == shape
    batched = [bar for bar in RECORD.progress if bar.total == N_FACES]
    assert len(batched) == 6 and all(bar.updates == [2, 2, 1] for bar in batched)  # a step per chunk
    # results come down once per chunk: 3 chunks for each of the six batch nodes, 1 for the norm reference
    assert guard.crossings["to_host"] == 6 * 3 + 1 + 1


def test_the_host_nodes_stay_on_the_host(pack, model, guard, tmp_path):
    from skimage import data

    photo = torch.from_numpy(data.astronaut().astype(np.float32) / 255)[None]
    with guard:
        crops, alignment = nodes_of(pack)["CLIPInverterAlignFace"].execute(photo, 0, 64, "error").args
        pasted = run(pack, "CLIPInverterPasteBack", photo, crops, alignment, 0.1)
    assert guard.violations == [] and crops.device == pasted.device == CPU
    lat = pack.clipinverter_core.pipeline.Latent(torch.zeros(2, 14, 512), torch.zeros(2, 13, 512))
    fp = sys.modules["folder_paths"]
    with guard:
        blended = run(pack, "CLIPInverterBlendLatents", lat, lat, 0.5)
        saved = nodes_of(pack)["CLIPInverterSaveLatent"].execute(blended, "devices/test").ui["latents"][0]
        os.replace(os.path.join(fp.get_output_directory(), saved["subfolder"], saved["filename"]),
                   os.path.join(fp.get_input_directory(), saved["filename"]))
        loaded = run(pack, "CLIPInverterLoadLatent", saved["filename"])
    assert guard.violations == [] and blended.w.device == loaded.w.device == loaded.conv.device == CPU


# --- the chunked batch loop, on real values --------------------------------------------------------------------
@pytest.fixture(scope="module")
def generator_only(pack, standin256):
    core = pack.clipinverter_core.pipeline.CLIPInverter
    inv = core.from_bundle(standin256, "cpu", sections=("generator",))
    return pack.nodes.memory.LoadedInverter(inv, CPU, CPU, "generator")


@pytest.fixture(scope="module")
def codes():
    g = torch.Generator().manual_seed(0)
    return torch.randn(5, 14, 512, generator=g)


def _decode(pack, model, codes):
    return run(pack, "CLIPInverterDecode", model, pack.clipinverter_core.pipeline.Latent(codes))


def test_chunks_follow_the_free_memory_and_give_one_pass_s_result(pack, generator_only, codes):
    RECORD.devices["load"] = CPU
    whole = _decode(pack, generator_only, codes)
    assert RECORD.progress[-1].updates == [5]
    RECORD.free_memory = 0  # room for one item: one at a time
    one_by_one = _decode(pack, generator_only, codes)
    assert RECORD.progress[-1].updates == [1] * 5 and RECORD.checks == 1 + 5
    assert rel_l2(one_by_one, whole) < SAME  # batch 1 folds the styles into the weights, larger batches do not


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
                                   RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)")])
def test_out_of_memory_halves_the_chunk_and_frees_the_other_models_once(pack, generator_only, codes, monkeypatch,
                                                                        error):
    RECORD.devices["load"] = CPU
    whole = _decode(pack, generator_only, codes)
    sizes = []
    decode = generator_only.inverter.decode

    def tight(latent):
        sizes.append(len(latent))
        if len(latent) > 2:
            raise error
        return decode(latent)

    monkeypatch.setattr(generator_only.inverter, "decode", tight)
    RECORD.reset()
    RECORD.devices["load"] = CPU
    out = _decode(pack, generator_only, codes)
    assert sizes == [5, 2, 2, 1] and len(RECORD.freed) == 1
    assert RECORD.progress[-1].updates == [2, 2, 1]
    assert rel_l2(out, whole) < SAME


def test_an_error_that_is_not_out_of_memory_is_not_retried(pack, generator_only, codes, monkeypatch):
    RECORD.devices["load"] = CPU
    calls = []

    def broken(latent):
        calls.append(len(latent))
        raise RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED")

    monkeypatch.setattr(generator_only.inverter, "decode", broken)
    with pytest.raises(RuntimeError, match="CUDNN_STATUS"):
        _decode(pack, generator_only, codes)
    assert calls == [5] and RECORD.freed == []


def test_the_memory_estimate_follows_the_compute_dtypes(pack):
    from clipinverter_core.memory import encoder_bytes, synthesis_bytes

    fp32 = synthesis_bytes(1024, torch.float32, None, 64)
    mixed = synthesis_bytes(1024, torch.float32, torch.float16, 64)    # fast fp16/bf16: float32 below 64 px
    all16 = synthesis_bytes(1024, torch.float16, None, 64)            # ref fp16: every map in fp16
    assert all16 < mixed < fp32 and mixed > fp32 / 2                  # the float32 RGB skip stays
    assert synthesis_bytes(32, torch.float32, torch.float16, 64) == synthesis_bytes(32, torch.float32, None, 64)
    assert encoder_bytes(torch.float32) == 2 * encoder_bytes(torch.bfloat16)
    # BENCHMARKS.md measured ~390 MiB per item for the fast float32 synthesis at 1024 (CPU): the estimate covers it
    assert 390 * 2 ** 20 <= fp32 <= 2 * 390 * 2 ** 20


def test_the_model_s_estimate_uses_the_dtypes_its_networks_compute_in(pack, model):
    mem = pack.clipinverter_core.memory
    inv = model.inverter  # fast fp16: the encoder in fp16, the generator's weights and maps below 64 px in float32
    assert (inv.enc_dtype, inv.gen_dtype, inv.generator.low_precision) == (torch.float16, torch.float32, torch.float16)
    assert model.item_memory() == max(mem.encoder_bytes(torch.float16),
                                      mem.synthesis_bytes(256, torch.float32, torch.float16, 64))
