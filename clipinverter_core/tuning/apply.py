"""Pivotal tuning as the API uses it: tune at a model's own inversions, and edit with the tuned weights.

    tuning = refine_identity(model, faces.x, targets)      # pivots: model.invert(faces.x); targets at model.size
    tuned = with_tuning(model, tuning)                      # a CLIPInverter whose generator carries the change
    tuned.edit(faces.x, t)                                  # the encoder and the adapter are the model's own

The model given is never changed: an edit with it afterwards gives the same pixels as before.
"""
from __future__ import annotations

import copy
import os
from typing import Callable

import torch

from ..errors import CheckpointError, InputError
from ..fileio import file_stamp
from ..images import uint8_to_signed
from .coach import PivotalTuner, Tuning, synthesis_parameters
from .settings import PHOTO, TuningSettings

_SHA_CACHE: dict[tuple, str] = {}
INVERT_CHUNK = 8   # faces inverted at once for the pivots


def bundle_sha256(path: str) -> str:
    """The sha256 of a bundle file, computed once per process for each (path, size, mtime)."""
    from ..weights.convert import sha256_of

    key = file_stamp(path)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_of(path)
    return _SHA_CACHE[key]


def check_base(model, tuning: Tuning) -> None:
    """Refuses tuned weights made on another bundle, or whose tensors do not fit this generator."""
    ours = bundle_sha256(model.bundle_path)
    if tuning.base_sha256 != ours:
        raise CheckpointError(f"these tuned weights were made on the bundle with sha256 {tuning.base_sha256[:12]}..., "
                              f"not on {os.path.basename(model.bundle_path)} ({ours[:12]}...): tune again on it")
    params = synthesis_parameters(model.generator)
    for name, d in tuning.deltas.items():
        if name not in params or tuple(params[name].shape) != tuple(d.shape):
            raise CheckpointError(f"tuned tensor {name!r} {tuple(d.shape)} does not fit this generator")


def with_tuning(model, tuning: Tuning, strength: float = 1.0):
    """A CLIPInverter sharing `model`'s encoder, adapter and CLIP, whose generator is a copy with
    `strength` x the tuned change added (1: the tuned weights; 0: the base ones)."""
    if model.generator is None:
        raise CheckpointError("this model was loaded without its generator")
    check_base(model, tuning)
    gen = copy.deepcopy(model.generator)
    params = synthesis_parameters(gen)
    with torch.no_grad():
        for name, d in tuning.deltas.items():
            params[name].add_(d.to(params[name].device, params[name].dtype), alpha=strength)
    gen.refresh()
    tuned = copy.copy(model)
    tuned.generator = gen
    tuned._synthesis = gen.synthesis
    if model.compile:
        from ..compiled import CompiledStage
        tuned._synthesis = CompiledStage(gen.synthesis, model.compile, "synthesis")
    return tuned


def refine_identity(model, faces: torch.Tensor, targets: torch.Tensor, settings: TuningSettings = PHOTO,
                    lpips=None, alexnet: str | None = None, progress: Callable | None = None,
                    check: Callable | None = None) -> Tuning:
    """Tunes `model`'s generator at the inversions of `faces` ((N, 3, 256, 256) in [-1, 1], the encoder's input)
    towards `targets` ((N, 3, size, size) in [-1, 1], the same faces at the generator's resolution). Both may be
    uint8 instead (a clip's crops: converted a few at a time). All N faces tune one generator: photos of one
    person, or a clip's frames. `lpips`: a PerceptualNet, else loaded from `alexnet` (or the models folder's
    alexnet-owt-7be5be79.pth)."""
    if model.generator is None or model.encoder is None:
        raise CheckpointError("identity tuning needs the encoder and the generator of the bundle")
    if targets.ndim != 4 or targets.shape[1:] != (3, model.size, model.size) or len(targets) != len(faces):
        raise InputError(f"identity tuning needs each face at the generator's {model.size}x{model.size}, got "
                         f"{tuple(targets.shape)} for {len(faces)} face(s)")
    if lpips is None:
        from ..lossnets import find_loss_file, load_lpips
        lpips = load_lpips(find_loss_file("alexnet", alexnet), model.device)
    pivots = torch.cat([model.invert(uint8_to_signed(faces[a:a + INVERT_CHUNK]))[0].float().cpu()
                        for a in range(0, len(faces), INVERT_CHUNK)])
    tuner = PivotalTuner(model.generator, lpips, model.latent_avg[0].float(), settings)
    tuning = tuner.run(pivots, targets, progress=progress, check=check)
    tuning.base_sha256 = bundle_sha256(model.bundle_path)
    return tuning
