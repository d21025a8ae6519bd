"""CLIP embeddings as edit targets: a reference picture's image embedding rescaled to a text embedding's length.

The CLIPAdapter and CLIPRemapper were trained on CLIP text embeddings. CLIP image embeddings point into the same
space but are longer (the image/text modality gap), so an image embedding used as a target is first scaled to
the length of a text embedding, by default that of NORM_REFERENCE_PROMPT; its direction is kept.
"""
from __future__ import annotations

import torch

NORM_REFERENCE_PROMPT = "a photo of a face"  # the text whose embedding's length image embeddings take
EPS = 1e-8  # shorter than this an embedding has no direction: it is scaled as if it had this length


def match_norm(embeddings: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Each row of embeddings (B, D) scaled to the L2 norm of reference (1 or B, D): the same direction, the
    reference's length. Any device and dtype (the result follows torch's type promotion)."""
    return embeddings * (reference.norm(dim=-1, keepdim=True) / embeddings.norm(dim=-1, keepdim=True).clamp_min(EPS))
