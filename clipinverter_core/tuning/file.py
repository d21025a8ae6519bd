"""Tuned weights on disk: a small safetensors file holding only the change of each tuned synthesis tensor
(`generator.<name>`, the bundle's own names), bound to the bundle it was tuned on.

Metadata (strings): format 'clipinverter.tuning', format_version, base_sha256 (the bundle file's sha256; loading
onto another bundle is refused), settings (TuningSettings JSON), images, steps_run, losses (JSON: the first and
the last step's mean L2 and LPIPS), created_by.
"""
from __future__ import annotations

import json
import os


from .. import __version__
from ..errors import CheckpointError
from ..fileio import atomic_output
from .coach import Tuning
from .settings import TuningSettings

FORMAT = "clipinverter.tuning"
FORMAT_VERSION = 1
PREFIX = "generator."


def save_tuning(path: str, tuning: Tuning) -> None:
    """Writes atomically (a temporary file beside `path`, renamed when complete)."""
    from safetensors.torch import save_file

    if not tuning.base_sha256:
        raise ValueError("a tuning without its base bundle's sha256 cannot be saved (tune through refine_identity)")
    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "base_sha256": tuning.base_sha256,
            "settings": tuning.settings.to_json(), "images": str(tuning.images), "steps_run": str(tuning.steps_run),
            "losses": json.dumps({"first": tuning.first, "last": tuning.last}),
            "created_by": f"clipinverter_core {__version__}"}
    tensors = {PREFIX + k: v.detach().contiguous().cpu() for k, v in tuning.deltas.items()}
    with atomic_output(path) as tmp:
        save_file(tensors, tmp, metadata=meta)


def load_tuning(path: str) -> Tuning:
    """A Tuning read back (its deltas on the CPU; its visits are not stored)."""
    from safetensors import safe_open

    if not os.path.isfile(path):
        raise CheckpointError(f"no tuned weights at {path}")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{path}: not CLIPInverter tuned weights (no '{FORMAT}' metadata); make them "
                                      "with `edit --refine-identity --save-tuning FILE` or the Save Tuning node")
            if meta.get("format_version") != str(FORMAT_VERSION):
                raise CheckpointError(f"{path}: tuned weights format version {meta.get('format_version')}, this "
                                      f"code reads version {FORMAT_VERSION}; tune again")
            deltas = {k[len(PREFIX):]: f.get_tensor(k) for k in f.keys() if k.startswith(PREFIX)}
    except CheckpointError:
        raise
    except Exception as e:  # safetensors' own error types
        raise CheckpointError(f"{path}: not a readable safetensors file ({str(e).strip()[:200]})") from None
    try:
        losses = json.loads(meta["losses"])
        return Tuning(deltas, TuningSettings.from_json(meta["settings"]), int(meta["images"]), int(meta["steps_run"]),
                      losses["first"], losses["last"], meta["base_sha256"])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: incomplete tuned-weights metadata ({e}); tune again") from None
