"""Aligned faces -> W+ codes (with or without the CLIPAdapter edit) -> remapped codes.

Batches broadcast as the core's pair_indices says: one embedding edits every face, N embeddings edit one face
N ways, N and N pair up; other counts are an error.
"""
from __future__ import annotations

import logging

import torch
from comfy_api.v0_0_2 import io

from ..clipinverter_core.batching import features_once_per_face, pair_indices, take
from ..clipinverter_core.inputs import STRENGTH_RANGE
from ..clipinverter_core.networks import LEVELS, Features
from ..clipinverter_core.pipeline import NO_REMAPPER, Latent
from . import types
from .images import to_encoder_input
from .memory import gather_chunks

log = logging.getLogger("clipinverter")
STRENGTH = dict(min=STRENGTH_RANGE[0], max=STRENGTH_RANGE[1], step=0.05)


def gather_latents(model, n: int, work) -> Latent:
    """Latent of n rows from chunked work returning (w, conv or None), gathered on the host."""
    w, conv = gather_chunks(model, n, work)
    return Latent(w, conv)


def face_features(inv, image: torch.Tensor, idx: list[int]) -> Features:
    """Backbone features of the faces image[idx] (a ComfyUI IMAGE), converted a chunk at a time: one pass per
    face when a chunk edits one face several ways (batching.features_once_per_face)."""
    return features_once_per_face(inv.features, image, idx, to_encoder_input)


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
        idx_x, idx_t = pair_indices(image.shape[0], embedding.shape[0], "images", "embeddings")

        def work(inv, a, b):
            feats = face_features(inv, image, idx_x[a:b])
            return inv.edit_features(feats, take(embedding, idx_t[a:b]), strength, levels)[1], None

        return io.NodeOutput(gather_latents(model, len(idx_x), work))


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
        return io.NodeOutput(gather_latents(model, image.shape[0], lambda inv, a, b: (
            inv.invert(to_encoder_input(image[a:b]))[0], None)))


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
        if not model.inverter.has_remapper:  # as the CLI: the codes pass through, and the log says why
            log.warning("clipinverter: %s: %s; Remap Latent passes the codes through", model.name, NO_REMAPPER)
            return io.NodeOutput(latent.index(idx_l))

        def work(inv, a, b):
            part = Latent(take(latent.w, idx_l[a:b]), None if latent.conv is None else take(latent.conv, idx_l[a:b]))
            remapped = inv.remap(part, take(embedding, idx_t[a:b]), strength)
            return remapped.w, remapped.conv

        return io.NodeOutput(gather_latents(model, len(idx_l), work))
