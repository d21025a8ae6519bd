"""Aligned faces -> W+ codes (with or without the CLIPAdapter edit) -> remapped codes.

Batches broadcast as the core's pair_indices says: one embedding edits every face, N embeddings edit one face
N ways, N and N pair up; other counts are an error.
"""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..clipinverter_core.images import tensor_to_encoder_input
from ..clipinverter_core.networks import LEVELS
from ..clipinverter_core.pipeline import Latent, pair_indices
from . import types
from .memory import run_items

STRENGTH = dict(min=-10.0, max=10.0, step=0.05)


def images_to_encoder_input(image: torch.Tensor) -> torch.Tensor:
    """ComfyUI IMAGE [B, H, W, 3] in [0, 1] -> the encoder's (B, 3, 256, 256) in [-1, 1]."""
    return tensor_to_encoder_input(image.movedim(-1, 1)[:, :3].float())


def cat_latents(parts: list[Latent]) -> Latent:
    convs = [p.conv for p in parts]
    conv = None if any(c is None for c in convs) else torch.cat(convs)
    return Latent(torch.cat([p.w for p in parts]), conv)


def to_cpu(latent: Latent) -> Latent:
    return latent.to("cpu", torch.float32)


def _image_input():
    return io.Image.Input("image", tooltip="FFHQ-aligned face crop(s) (eyes level, face centred as in FFHQ); "
                                           "resized to 256x256 for the encoder.")


class InvertEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CLIPInverterInvert",
            display_name="Invert with CLIPAdapter",
            category="CLIPInverter",
            description="Inverts aligned faces with the e4e encoder and edits the codes towards the embedding "
                        "with the CLIPAdapter, in one forward pass: w_hat = w + strength * 0.1 * delta. Follow with "
                        "Remap Latent and StyleGAN Decode for the paper's full edit.",
            inputs=[
                types.Model.Input("model", tooltip="From Load Inverter."),
                _image_input(),
                types.Embedding.Input("embedding", tooltip="Target: Encode Text or Encode Image. One embedding "
                                      "edits every face; N embeddings and one face give N edits; N and N pair up."),
                io.Float.Input("strength", default=1.0, **STRENGTH,
                               tooltip="Edit strength alpha: 1 is the paper, 0 no edit, above 1 stronger, below 0 "
                                       "the opposite direction."),
                io.Boolean.Input("coarse", default=True,
                                 tooltip="Edit the coarse W+ rows 0-2 (pose, face shape); off keeps them as inverted."),
                io.Boolean.Input("medium", default=True,
                                 tooltip="Edit the medium W+ rows 3-6 (hair style, facial features); off keeps them as inverted."),
                io.Boolean.Input("fine", default=True,
                                 tooltip="Edit the fine W+ rows 7 on (colours, texture); off keeps them as inverted."),
            ],
            outputs=[types.Latent.Output(display_name="latent",
                                         tooltip="Edited W+ codes, one per face/embedding pair.")],
        )

    @classmethod
    def execute(cls, model, image, embedding, strength, coarse, medium, fine) -> io.NodeOutput:
        levels = tuple(lv for lv, on in zip(LEVELS, (coarse, medium, fine)) if on)
        x = images_to_encoder_input(image)
        idx_x, idx_t = pair_indices(x.shape[0], embedding.shape[0], "images", "embeddings")
        features = {}  # one backbone pass per face, reused by its edits

        def work(inv, i):
            j = idx_x[i]
            if j not in features:
                features.clear()
                features[j] = inv.features(x[j:j + 1])
            t = embedding[idx_t[i]:idx_t[i] + 1]
            return to_cpu(Latent(inv.edit_features(features[j], t, strength, levels)[1]))

        return io.NodeOutput(cat_latents(run_items(model, len(idx_x), work)))


class InvertOnly(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CLIPInverterInvertOnly",
            display_name="Invert (no edit)",
            category="CLIPInverter",
            description="Inverts aligned faces with the e4e encoder: w = E(x) + w_avg. Decoding it gives the "
                        "reconstruction; blend it, remap it or save it.",
            inputs=[types.Model.Input("model", tooltip="From Load Inverter."), _image_input()],
            outputs=[types.Latent.Output(display_name="latent", tooltip="W+ codes, one per face.")],
        )

    @classmethod
    def execute(cls, model, image) -> io.NodeOutput:
        x = images_to_encoder_input(image)
        parts = run_items(model, x.shape[0], lambda inv, i: to_cpu(Latent(inv.invert(x[i:i + 1])[0])))
        return io.NodeOutput(cat_latents(parts))


class Remap(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CLIPInverterRemap",
            display_name="Remap Latent",
            category="CLIPInverter",
            description="CLIPRemapper: pulls the styled-conv codes towards the embedding inside the generator "
                        "(the paper's second stage; it sharpens the edit). ToRGB codes stay as they are.",
            inputs=[
                types.Model.Input("model", tooltip="From Load Inverter."),
                types.Latent.Input("latent", tooltip="Codes from Invert with CLIPAdapter (or any W+ codes)."),
                types.Embedding.Input("embedding", tooltip="Usually the same embedding the edit used. Batches pair "
                                      "up as in Invert with CLIPAdapter."),
                io.Float.Input("strength", default=1.0, **STRENGTH,
                               tooltip="Remap strength beta: scales every layer's mixing weight; 1 is the paper, "
                                       "0 leaves the codes unchanged."),
            ],
            outputs=[types.Latent.Output(display_name="latent",
                                         tooltip="The codes with their styled-conv rows remapped.")],
        )

    @classmethod
    def execute(cls, model, latent, embedding, strength) -> io.NodeOutput:
        idx_l, idx_t = pair_indices(len(latent), embedding.shape[0], "latents", "embeddings")
        if strength == 0:  # as the CLI: no remapper at all
            return io.NodeOutput(latent.index(idx_l))

        def work(inv, i):
            part = latent.index(slice(idx_l[i], idx_l[i] + 1))
            return to_cpu(inv.remap(part, embedding[idx_t[i]:idx_t[i] + 1], strength))

        return io.NodeOutput(cat_latents(run_items(model, len(idx_l), work)))
