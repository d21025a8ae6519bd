"""Measures of an edit (no ComfyUI import): does it match the text, is it the same person, is it realistic.

scores.py    per image: clip_score, directional_similarity, identity_similarity, lpips_distance, image_embeddings
fidelity.py  per set: FID and KID (torch-fidelity, a local Inception file)
edits.py     score_edits (all per-image scores of a batch) and load_networks (optional files: found or skipped)
table.py     means, CSV, JSON, text table;  pictures.py  contact sheet, strength plot
report.py    the measurement behind `evaluate`;  evaluate.py  the CLI subcommand
temporal.py  an edited clip against its source: TL-ID, TG-ID (STIT), the track's wobble;  clips.py  its measurement
             (`evaluate --edited`) and report
The networks (ArcFace, LPIPS) come from clipinverter_core.lossnets, shared with the training losses.
The functions are imported on first use, so that the CLI's parser does not import torch.
"""
from __future__ import annotations

import importlib

SOURCE_TEXT = "a photo of a face"  # the neutral description of an input the directional score starts from

_EXPORTS = {"clip_score": "scores", "directional_similarity": "scores", "identity_similarity": "scores",
            "image_embeddings": "scores", "lpips_distance": "scores", "score_edits": "edits",
            "load_networks": "edits", "fid_kid": "fidelity", "inception_features": "fidelity",
            "load_inception": "fidelity", "find_inception": "fidelity"}
__all__ = ["SOURCE_TEXT", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
