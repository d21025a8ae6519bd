"""Every per-image score of a batch of edits at once, and the optional networks they need (found or skipped).

    nets, skipped = load_networks(arcface=None, alexnet=None, device="cuda")  # missing files: skipped, why
    scores = score_edits(clip_model, inputs, edits, target_emb, source_emb, **nets)
    # {"clip_score": (B,), "directional": (B,), "identity": (B,), "lpips": (B,)} (the ones it has networks for)

The CLI `evaluate`, the Edit Metrics node and training's validation all score through here.
"""
from __future__ import annotations

import torch

from ..errors import CheckpointError
from . import SOURCE_TEXT  # noqa: F401 (re-exported: the default of the callers)
from .scores import clip_score, directional_similarity, identity_similarity, image_embeddings, lpips_distance

OPTIONAL = {"identity": "arcface", "lpips": "alexnet"}  # score -> lossnets file kind


@torch.no_grad()
def score_edits(clip_model: torch.nn.Module, inputs: torch.Tensor, edits: torch.Tensor, target_emb: torch.Tensor,
                source_emb: torch.Tensor, identity_net: torch.nn.Module | None = None,
                perceptual_net: torch.nn.Module | None = None,
                input_clip_emb: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Scores of edits (B, 3, H, W) of inputs (B or 1, 3, h, w), both in [-1, 1], aimed at the CLIP text
    embeddings target_emb (B or 1, 512), from the neutral text embedding source_emb (1, 512). input_clip_emb:
    the inputs' CLIP image embeddings when the caller has them already. Scores without a network are left out."""
    edit_emb = image_embeddings(clip_model, edits)
    src_emb = image_embeddings(clip_model, inputs) if input_clip_emb is None else input_clip_emb
    dev = edit_emb.device
    target_emb, source_emb, src_emb = (t.to(dev) for t in (target_emb, source_emb, src_emb))
    out = {"clip_score": clip_score(edit_emb, target_emb),
           "directional": directional_similarity(src_emb, edit_emb, source_emb, target_emb)}
    if identity_net is not None:
        out["identity"] = identity_similarity(identity_net, inputs, edits).to(dev)
    if perceptual_net is not None:
        out["lpips"] = lpips_distance(perceptual_net, inputs, edits).to(dev)
    return out


def load_networks(arcface: str | None = None, alexnet: str | None = None, folders: list[str] | None = None,
                  device: str | torch.device | None = None, identity: bool = True,
                  lpips: bool = True) -> tuple[dict[str, torch.nn.Module], dict[str, str]]:
    """(keyword arguments for score_edits, {score: why it is skipped}). Each file is the explicit path, else
    found by lossnets.find_loss_file in `folders`; a missing file skips its score, a broken one is an error."""
    from ..lossnets import find_loss_file, load_arcface, load_lpips

    nets, skipped = {}, {}
    wanted = {"identity": (identity, arcface, load_arcface, "identity_net"),
              "lpips": (lpips, alexnet, load_lpips, "perceptual_net")}
    for score, (on, explicit, loader, arg) in wanted.items():
        if not on:
            continue
        try:
            path = find_loss_file(OPTIONAL[score], explicit, folders)
        except CheckpointError as e:
            if explicit:  # a path the user gave that is not there is a mistake, not a skip
                raise
            skipped[score] = str(e)
            continue
        try:
            nets[arg] = loader(path, device)
        except ImportError as e:  # lpips is a training requirement; without it LPIPS is skipped, saying so
            skipped[score] = f"{e.name or e} is not installed (pip install {e.name or 'lpips'})"
    return nets, skipped
