"""Load Inverter: a bundle from the `clipinverter` model folder -> CLIPINVERTER_MODEL."""
from __future__ import annotations

import logging
import os

import comfy.model_management as mm
import comfy.utils
import torch
from comfy_api.v0_0_2 import io

from ..clipinverter_core.fileio import file_stamp
from ..clipinverter_core.pipeline import PRECISIONS, CLIPInverter
from ..clipinverter_core.weights.folder import convert_in_place
from . import paths, types
from .memory import LoadedInverter

log = logging.getLogger("clipinverter")
DEVICES = ["default", "cpu"]


def devices_for(choice: str) -> tuple[torch.device, torch.device]:
    """(load device, offload device): ComfyUI's compute device (CUDA, MPS, CPU...) or the CPU."""
    if choice == "cpu":
        return torch.device("cpu"), torch.device("cpu")
    return mm.get_torch_device(), mm.unet_offload_device()


def comfy_precision(device: torch.device) -> str:
    """precision 'auto': what ComfyUI's model management would run a model in on `device` (its --force-fp32,
    --force-fp16 and the device's abilities included)."""
    if mm.should_use_bf16(device):
        return "bf16"
    return "fp16" if mm.should_use_fp16(device) else "fp32"


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
                                       "path of extra_model_paths.yaml). With the official files there as "
                                       "downloaded (pretrained_faces.pt, e4e_ffhq_encode.pt, a CLIP ViT-B/32 file), "
                                       "clipinverter_faces.safetensors is listed: the first run converts them into "
                                       "it, beside them, and later runs load it."),
                io.Combo.Input("device", options=DEVICES, default="default",
                               tooltip="default: ComfyUI's compute device (CUDA, MPS or CPU, as ComfyUI was "
                                       "started); cpu: always the CPU."),
                io.Combo.Input("precision", options=["auto", *PRECISIONS], default="auto",
                               tooltip="auto: what ComfyUI's model management picks for the device (bf16 or fp16 "
                                       "on most GPUs, fp32 on the CPU). fp32 matches the official implementation; "
                                       "fp16 / bf16 halve the memory on GPUs, within 1e-2 of fp32."),
            ],
            outputs=[types.Model.Output(display_name="model",
                                        tooltip="The loaded CLIPInverter networks, for every other node of the pack.")],
        )

    @classmethod
    def validate_inputs(cls, bundle) -> bool | str:
        """Replaces ComfyUI's 'value not in list' with what is missing, where it was looked for, and the sources."""
        if paths.has_bundle(bundle) or paths.pending_conversion(bundle) is not None:
            return True
        return paths.missing_bundle_message(bundle)

    @classmethod
    def fingerprint_inputs(cls, bundle, **_) -> str:
        """The chosen file's size and modification time: a bundle replaced under the same name is loaded again, not
        served from ComfyUI's cache of this node's output."""
        files = paths.pending_conversion(bundle)
        if files is not None:
            return "convert:" + files.fingerprint()
        if not paths.has_bundle(bundle):
            return ""
        return str(file_stamp(paths.bundle_path(bundle)))

    @classmethod
    def execute(cls, bundle, device, precision) -> io.NodeOutput:
        files = paths.pending_conversion(bundle)
        path = _convert(files) if files is not None else paths.bundle_path(bundle)
        load_device, offload_device = devices_for(device)
        if precision == "auto":
            precision = comfy_precision(load_device)
            log.info("clipinverter: precision auto: %s on %s (ComfyUI's model management)", precision, load_device)
        # mmap=False: a copy in memory, so that a long-lived server survives the file being overwritten in place
        inverter = CLIPInverter.from_bundle(path, offload_device, precision, mmap=False)
        log.info("clipinverter: loaded %s: %s", bundle, inverter.contents())
        if not inverter.has_remapper:
            log.warning("clipinverter: %s has no CLIPRemapper (a stage-1 training result): Remap Latent will pass "
                        "the codes through", bundle)
        if inverter.metadata.get("standin"):
            log.warning("clipinverter: %s holds stand-in RANDOM weights: edits will not look like faces", bundle)
        return io.NodeOutput(LoadedInverter(inverter, load_device, offload_device, os.path.basename(path)))


def _convert(files) -> str:
    """The official files into their bundle (the core's converter), with a progress bar over its five steps;
    cancel stops between steps and leaves no file (the bundle is written atomically)."""
    pbar = comfy.utils.ProgressBar(6)  # reading each of the three files, hashing, writing; then done

    def step(message: str) -> None:
        mm.throw_exception_if_processing_interrupted()
        log.info("clipinverter: first run of %s: %s", os.path.basename(files.bundle), message)
        pbar.update(1)
    path = convert_in_place(files, step)
    pbar.update(1)
    log.info("clipinverter: converted the official files into %s", path)
    return path
