"""Validation's edit scores: the numbers `evaluate` and the Edit Metrics node report, through the same code
(clipinverter_core.metrics), so a run's curves and a report on its bundle read alike.

    val/metric_clip_score    cos(CLIP image embedding of the edit, CLIP text embedding of the target caption)
    val/metric_directional   cos(image change, text change from metrics.SOURCE_TEXT to the target caption)
    val/metric_identity      cos of the identity network's features of input and edit (ArcFace; MoCo v2 when
                             the run uses --use-moco), when the run has an identity network
    val/metric_lpips         LPIPS AlexNet v0.1 distance of the edit to its input, when the run has LPIPS
"""
from __future__ import annotations

import torch

PREFIX = "metric_"


@torch.no_grad()
def edit_scores(model, losses, batch, images: dict[str, torch.Tensor]) -> dict[str, float]:
    """Batch means of metrics.score_edits for the edit images['edit'] of batch.x aimed at batch.tokens_target,
    with the run's own CLIP and loss networks (nothing is loaded twice)."""
    from ..metrics import SOURCE_TEXT, score_edits

    target = model.encode_text(batch.tokens_target).float()
    source = model.encode_text(model.tokenize([SOURCE_TEXT])).float()
    identity = losses.identity.net if losses.identity is not None else None
    perceptual = losses.lpips.net if losses.lpips is not None else None
    scores = score_edits(model.clip, batch.x, images["edit"], target, source, identity_net=identity,
                         perceptual_net=perceptual)
    return {PREFIX + name: float(v.float().mean()) for name, v in scores.items()}
