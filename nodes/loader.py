"""Load Inverter: a bundle from the `clipinverter` model folder -> CLIPINVERTER_MODEL."""
from __future__ import annotations

import logging
import os

import comfy.model_management as mm
import torch
from comfy_api.v0_0_2 import io

from ..clipinverter_core.pipeline import PRECISIONS, CLIPInverter
from . import paths, types
from .memory import LoadedInverter

log = logging.getLogger("clipinverter")
DEVICES = ["default", "cpu"]


def devices_for(choice: str) -> tuple[torch.device, torch.device]:
    """(load device, offload device): ComfyUI's compute device (CUDA, MPS, CPU...) or the CPU."""
    if choice == "cpu":
        return torch.device("cpu"), torch.device("cpu")
    return mm.get_torch_device(), mm.unet_offload_device()


class LoadInverter(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CLIPInverterLoader",
            display_name="Load Inverter",
            category="CLIPInverter",
            description="Loads a CLIPInverter bundle (e4e encoder, CLIPAdapter, StyleGAN2 + CLIPRemapper, CLIP "
                        "ViT-B/32) from the clipinverter model folder. ComfyUI's model management moves it to the "
                        "GPU when a node needs it and offloads it when other models need the room.",
            inputs=[
                io.Combo.Input("bundle", options=paths.bundle_names(),
                               tooltip="A .safetensors bundle in ComfyUI/models/clipinverter (or a clipinverter: "
                                       "path of extra_model_paths.yaml), made with `python -m clipinverter_core "
                                       "convert` from the official files."),
                io.Combo.Input("device", options=DEVICES, default="default",
                               tooltip="default: ComfyUI's compute device (CUDA, MPS or CPU, as ComfyUI was "
                                       "started); cpu: always the CPU."),
                io.Combo.Input("precision", options=list(PRECISIONS), default="fp32",
                               tooltip="fp32 matches the official implementation; fp16 / bf16 halve the memory "
                                       "on GPUs, with small pixel differences."),
            ],
            outputs=[types.Model.Output(display_name="model",
                                        tooltip="The loaded CLIPInverter networks, for every other node of the pack.")],
        )

    @classmethod
    def validate_inputs(cls, bundle) -> bool | str:
        """Replaces ComfyUI's 'value not in list' with what is missing, where it was looked for, and the sources."""
        return True if paths.has_bundle(bundle) else paths.missing_bundle_message(bundle)

    @classmethod
    def execute(cls, bundle, device, precision) -> io.NodeOutput:
        path = paths.bundle_path(bundle)
        load_device, offload_device = devices_for(device)
        # mmap=False: a copy in memory, so that a long-lived server survives the file being overwritten in place
        inverter = CLIPInverter.from_bundle(path, offload_device, precision, mmap=False)
        log.info("clipinverter: loaded %s: %s", bundle, inverter.contents())
        if not inverter.has_remapper:
            log.warning("clipinverter: %s has no CLIPRemapper (a stage-1 training result): Remap Latent will pass "
                        "the codes through", bundle)
        if inverter.metadata.get("standin"):
            log.warning("clipinverter: %s holds stand-in RANDOM weights: edits will not look like faces", bundle)
        return io.NodeOutput(LoadedInverter(inverter, load_device, offload_device, os.path.basename(path)))

