"""Encode Text and Encode Image: prompts or reference pictures -> CLIPINVERTER_EMBEDDING (B, 512)."""
from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..clipinverter_core.embeddings import NORM_REFERENCE_PROMPT, match_norm
from ..clipinverter_core.errors import InputError
from . import types
from .images import to_core
from .memory import run_chunks

NORM_MODES = ["match text", "none"]


def prompts_of(text: str) -> list[str]:
    """One prompt per non-empty line."""
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise InputError("Encode Text: no prompt given (write one description per line)")
    return prompts


class EncodeText(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CLIPInverterEncodeText",
            display_name="Encode Text",
            category="CLIPInverter",
            description="Embeds target descriptions with the bundle's CLIP text tower. One prompt per line: "
                        "N lines make a batch of N embeddings (N edits of one face, or one per face).",
            inputs=[
                types.Model.Input("model", tooltip="From Load Inverter."),
                io.String.Input("text", multiline=True, default="this person has blonde hair",
                                tooltip="The target description, e.g. 'this person has blonde hair and a beard'. "
                                        "Each non-empty line is one prompt of the batch."),
            ],
            outputs=[types.Embedding.Output(display_name="embedding",
                                            tooltip="Raw CLIP text embeddings, one per prompt line (B, 512).")],
        )

    @classmethod
    def execute(cls, model, text) -> io.NodeOutput:
        prompts = prompts_of(text)
        rows = run_chunks(model, len(prompts), lambda inv, a, b: inv.encode_text(prompts[a:b]))
        return io.NodeOutput(torch.cat(rows))


class EncodeImage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CLIPInverterEncodeImage",
            display_name="Encode Image",
            category="CLIPInverter",
            description="Reference-image guidance: embeds pictures with the bundle's CLIP image tower, so that an "
                        "edit moves the face towards the look of the reference (hair, colour, style) instead of a "
                        "text. CLIP image embeddings are longer than the text embeddings the model was trained on; "
                        "'match text' rescales them to a text embedding's length.",
            inputs=[
                types.Model.Input("model", tooltip="From Load Inverter."),
                io.Image.Input("image", tooltip="Reference picture(s); a batch gives one embedding per picture. "
                                                "Resized and centre-cropped as CLIP expects."),
                io.Combo.Input("norm_matching", options=NORM_MODES, default="match text",
                               tooltip="match text: scale each image embedding to the length of the embedding of "
                                       f"'{NORM_REFERENCE_PROMPT}' (bridges the image/text modality gap; "
                                       "recommended). none: the raw image embedding."),
            ],
            outputs=[types.Embedding.Output(display_name="embedding",
                                            tooltip="CLIP image embeddings, one per picture (B, 512); plugs in "
                                                    "wherever a text embedding does.")],
        )

    @classmethod
    def execute(cls, model, image, norm_matching) -> io.NodeOutput:
        pictures = to_core(image)
        rows = run_chunks(model, pictures.shape[0], lambda inv, a, b: inv.encode_image(pictures[a:b]))
        emb = torch.cat(rows)
        if norm_matching == "match text":
            ref = run_chunks(model, 1, lambda inv, a, b: inv.encode_text([NORM_REFERENCE_PROMPT]))[0]
            emb = match_norm(emb, ref)
        return io.NodeOutput(emb)
