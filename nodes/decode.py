"""StyleGAN Decode: CLIPINVERTER_LATENT -> IMAGE."""
from __future__ import annotations

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from ..clipinverter_core.images import generator_to_unit
from . import types
from .memory import run_items


class Decode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CLIPInverterDecode",
            display_name="StyleGAN Decode",
            category="CLIPInverter",
            description="Renders W+ codes with the bundle's StyleGAN2 generator (fixed noise, truncation 1) into "
                        "images of the generator's size (1024x1024 for the faces model).",
            inputs=[
                types.Model.Input("model", tooltip="From Load Inverter."),
                types.Latent.Input("latent", tooltip="Codes from Invert, Remap Latent, Blend Latents or Load "
                                                     "Latent."),
            ],
            outputs=[io.Image.Output(display_name="image",
                                     tooltip="The rendered faces, [B, H, W, 3] in [0, 1] (values outside the "
                                             "generator's [-1, 1] range are clamped).")],
        )

    @classmethod
    def execute(cls, model, latent) -> io.NodeOutput:
        def work(inv, i):
            image = inv.decode(latent.index(slice(i, i + 1)))
            return generator_to_unit(image).movedim(1, -1).to(mm.intermediate_device(), torch.float32)

        return io.NodeOutput(torch.cat(run_items(model, len(latent), work)))
