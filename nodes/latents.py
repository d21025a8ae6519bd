"""Latent utilities: blend two sets of codes; save and load codes as .safetensors."""
from __future__ import annotations

import os

import folder_paths
import torch
from comfy_api.v0_0_2 import io

from ..clipinverter_core.errors import InputError
from ..clipinverter_core.fileio import atomic_output
from ..clipinverter_core.pipeline import Latent, pair_indices
from . import types

FORMAT = "clipinverter.latent"
FORMAT_VERSION = "1"
EXTENSION = ".safetensors"


class BlendLatents(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CLIPInverterBlendLatents",
            display_name="Blend Latents",
            category="CLIPInverter",
            description="Linear blend of two sets of codes: (1 - ratio) * a + ratio * b, e.g. between the "
                        "reconstruction and the edit, or between two edits. Batches pair up like the edit nodes.",
            inputs=[
                types.Latent.Input("latent_a", tooltip="Codes at ratio 0."),
                types.Latent.Input("latent_b", tooltip="Codes at ratio 1."),
                io.Float.Input("ratio", default=0.5, min=-1.0, max=2.0, step=0.05,
                               tooltip="0 gives latent_a, 1 gives latent_b; values outside [0, 1] extrapolate."),
            ],
            outputs=[types.Latent.Output(display_name="latent", tooltip="The blended codes.")],
        )

    @classmethod
    def execute(cls, latent_a, latent_b, ratio) -> io.NodeOutput:
        if latent_a.w.shape[1:] != latent_b.w.shape[1:]:
            raise InputError(f"Blend Latents: codes of different models ({tuple(latent_a.w.shape[1:])} and "
                             f"{tuple(latent_b.w.shape[1:])} per item)")
        ia, ib = pair_indices(len(latent_a), len(latent_b), "latents in a", "latents in b")
        a, b = latent_a.index(ia), latent_b.index(ib)
        w = torch.lerp(a.w, b.w, ratio)
        conv = None if (a.conv is None and b.conv is None) else torch.lerp(a.conv_codes, b.conv_codes, ratio)
        return io.NodeOutput(Latent(w, conv))


class SaveLatent(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CLIPInverterSaveLatent",
            display_name="Save Latent (CLIPInverter)",
            category="CLIPInverter",
            description="Writes codes to ComfyUI's output folder as .safetensors: float32 'w' (B, n_latent, 512) "
                        "and, when remapped, 'conv' (B, n_latent - 1, 512). Load Latent (CLIPInverter) reads them "
                        "back from the input folder.",
            inputs=[
                types.Latent.Input("latent", tooltip="The codes to save."),
                io.String.Input("filename_prefix", default="clipinverter/latent",
                                tooltip="File name prefix inside the output folder; a counter is appended."),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, latent, filename_prefix) -> io.NodeOutput:
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory())
        file = f"{name}_{counter:05}_{EXTENSION}"
        tensors = {"w": latent.w.float().contiguous()}
        if latent.conv is not None:
            tensors["conv"] = latent.conv.float().contiguous()
        save_latent_file(os.path.join(folder, file), tensors)
        return io.NodeOutput(ui={"latents": [{"filename": file, "subfolder": subfolder, "type": "output"}]})


def save_latent_file(path: str, tensors: dict) -> None:
    from safetensors.torch import save_file

    with atomic_output(path) as tmp:
        save_file(tensors, tmp, metadata={"format": FORMAT, "format_version": FORMAT_VERSION})


def read_latent_file(path: str) -> Latent:
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise InputError(f"{path}: not a CLIPInverter latent file (written by Save Latent (CLIPInverter))")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    w, conv = tensors.get("w"), tensors.get("conv")
    if w is None or w.ndim != 3 or (conv is not None and conv.shape[:2] != (w.shape[0], w.shape[1] - 1)):
        raise InputError(f"{path}: malformed latent file (w {None if w is None else tuple(w.shape)}, "
                         f"conv {None if conv is None else tuple(conv.shape)})")
    return Latent(w.float(), None if conv is None else conv.float())


def input_latent_files() -> list[str]:
    folder = folder_paths.get_input_directory()
    if not os.path.isdir(folder):
        return []
    return sorted(f for f in os.listdir(folder) if f.endswith(EXTENSION) and os.path.isfile(os.path.join(folder, f)))


class LoadLatent(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CLIPInverterLoadLatent",
            display_name="Load Latent (CLIPInverter)",
            category="CLIPInverter",
            description="Reads codes saved by Save Latent (CLIPInverter). Put the file in ComfyUI's input folder.",
            inputs=[io.Combo.Input("latent_file", options=input_latent_files(),
                                   tooltip="A .safetensors latent file in ComfyUI's input folder.")],
            outputs=[types.Latent.Output(display_name="latent", tooltip="The saved codes.")],
        )

    @classmethod
    def fingerprint_inputs(cls, latent_file):
        path = os.path.join(folder_paths.get_input_directory(), latent_file)
        return os.path.getmtime(path) if os.path.isfile(path) else ""

    @classmethod
    def execute(cls, latent_file) -> io.NodeOutput:
        path = os.path.join(folder_paths.get_input_directory(), latent_file)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no latent file '{latent_file}' in the input folder "
                                    f"({folder_paths.get_input_directory()})")
        return io.NodeOutput(read_latent_file(path))
