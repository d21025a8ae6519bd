"""Tuned weights on disk: a small safetensors file holding only the change of each tuned synthesis tensor
(`generator.<name>`, the bundle's own names), bound to the bundle it was tuned on.

Metadata (strings): format 'clipinverter.tuning', format_version, base_sha256 (the bundle file's sha256; loading
onto another bundle is refused), settings (TuningSettings JSON), images, steps_run, losses (JSON: the first and
the last step's mean L2 and LPIPS), created_by.
"""
from __future__ import annotations

import json


from .. import __version__
from ..errors import CheckpointError
from ..fileio import read_tagged, write_tagged
from .coach import Tuning
from .settings import TuningSettings

FORMAT = "clipinverter.tuning"
FORMAT_VERSION = 1
PREFIX = "generator."
REMEDY = " (make them with `edit --refine-identity --save-tuning FILE` or the Save Tuning node)"


def save_tuning(path: str, tuning: Tuning) -> None:
    """Writes atomically (a temporary file beside `path`, renamed when complete)."""
    if not tuning.base_sha256:
        raise ValueError("a tuning without its base bundle's sha256 cannot be saved (tune through refine_identity)")
    meta = {"base_sha256": tuning.base_sha256, "settings": tuning.settings.to_json(), "images": str(tuning.images),
            "steps_run": str(tuning.steps_run), "losses": json.dumps({"first": tuning.first, "last": tuning.last}),
            "created_by": f"clipinverter_core {__version__}"}
    write_tagged(path, {PREFIX + k: v.detach().cpu() for k, v in tuning.deltas.items()}, FORMAT, FORMAT_VERSION, meta)


def load_tuning(path: str) -> Tuning:
    """A Tuning read back (its deltas on the CPU; its visits are not stored)."""
    meta, tensors = read_tagged(path, FORMAT, FORMAT_VERSION, "tuned-weights file", REMEDY)
    deltas = {k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)}
    try:
        losses = json.loads(meta["losses"])
        return Tuning(deltas, TuningSettings.from_json(meta["settings"]), int(meta["images"]), int(meta["steps_run"]),
                      losses["first"], losses["last"], meta["base_sha256"])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: incomplete tuned-weights metadata ({e}); tune again") from None
