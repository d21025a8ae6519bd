"""precision 'auto', the default of the CLI and of Load Inverter: fp32 on the CPU and MPS in the CLI, bf16 on CUDA
GPUs that compute it natively (compute capability 8 and up), fp16 on older ones; in ComfyUI, what its model
management picks for the device."""
from __future__ import annotations

import os

import pytest
import torch

from clipinverter_core import devices
from clipinverter_core.pipeline import CLIPInverter
from test_nodes import _fresh_record, comfy, nodes  # noqa: F401 - fixtures


@pytest.mark.parametrize("device, capability, expected", [("cpu", None, "fp32"), ("mps", None, "fp32"),
                                                          ("cuda", (8, 0), "bf16"), ("cuda:1", (9, 0), "bf16"),
                                                          ("cuda", (7, 5), "fp16")])
def test_auto_is_fp32_off_cuda_and_bf16_where_the_gpu_computes_it(device, capability, expected, monkeypatch):
    asked = []
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: asked.append(d) or capability)
    assert devices.auto_precision(device) == expected
    assert asked == ([torch.device(device)] if capability else [])


def test_the_model_resolves_auto_on_the_cpu(standin256):
    model = CLIPInverter.from_bundle(standin256, "cpu", "auto", impl="ref")
    assert model.precision == "fp32" and model.dtype == torch.float32


def test_the_cli_s_edit_commands_default_to_auto():
    from clipinverter_core.cli import photos, video
    from clipinverter_core.cli.common import Parser

    sub = Parser(prog="x").add_subparsers()
    photos.add_parser(sub)
    video.add_parser(sub)
    assert sub.choices["edit"].get_default("precision") == sub.choices["edit-video"].get_default("precision") == "auto"


def test_load_inverter_s_auto_asks_comfyui(nodes, comfy, standin256, monkeypatch):  # noqa: F811
    import comfy.model_management as mm

    folder = comfy[2] / "models" / "clipinverter"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "standin.safetensors").exists():
        os.symlink(standin256, folder / "standin.safetensors")
    loader = nodes["CLIPInverterLoader"]
    assert loader.define_schema().inputs[2].options["default"] == "auto"
    assert loader.execute("standin.safetensors", "cpu", "auto").args[0].inverter.precision == "fp32"
    asked = []
    monkeypatch.setattr(mm, "should_use_bf16", lambda device=None, **kw: asked.append(device) or True)
    assert loader.execute("standin.safetensors", "cpu", "auto").args[0].inverter.precision == "bf16"
    assert asked == [torch.device("cpu")]
