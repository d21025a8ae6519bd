"""StyleGAN Decode: CLIPINVERTER_LATENT -> IMAGE."""
from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..clipinverter_core.images import generator_to_unit
from ..clipinverter_core.pipeline import Latent
from . import types
from .images import as_output, comfy_layout
from .memory import gather_chunks


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
        def work(inv, a, b):
            part = Latent(latent.w[a:b], None if latent.conv is None else latent.conv[a:b])
            return comfy_layout(generator_to_unit(inv.decode(part)))

        images = gather_chunks(model, len(latent), work)  # on the host, filled chunk by chunk
        return io.NodeOutput(as_output(images))
