"""Building a run's parts from its config (a JSON-able dict, stored in every checkpoint): train-core's model,
losses, optimiser and step functions, the tokenizer; the hashes of the files the networks come from."""
from __future__ import annotations

import dataclasses
import os

import torch

from ..errors import CheckpointError
from .trainer import Parts

NETWORK_ROLES = ("model", "e4e", "stylegan2", "clipinverter", "clip")
LOSS_KINDS = ("arcface", "moco", "alexnet")


def hparams_from(config: dict):
    from .hparams import HParams
    return HParams(**config["hparams"])


def default_hparams(stage: int) -> dict:
    from .hparams import stage_defaults
    return dataclasses.asdict(stage_defaults(stage))


def sources(networks: dict) -> list[dict]:
    """{role, file, sha256, bytes} of every network file the run reads (a bundle's own sources included)."""
    from ..weights.convert import source_record

    out = []
    for role in NETWORK_ROLES:
        path = networks.get(role)
        if path:
            if not os.path.isfile(path):
                raise FileNotFoundError(2, "no such file", path)
            out.append(source_record(role, path))
    return out


def build_model(config: dict, device: torch.device, dtype: torch.dtype):
    from .model import TrainingModel

    net, stage = config["networks"], int(config["stage"])
    fresh = {"fresh_remapper": bool(config.get("fresh_remapper"))}
    if net.get("model"):
        return TrainingModel.from_bundle(net["model"], stage=stage, device=device, dtype=dtype,
                                         fresh_adapter=bool(config.get("fresh_adapter")), **fresh)
    missing = [r for r in ("e4e", "stylegan2" if stage == 1 and not net.get("clipinverter") else "clipinverter",
                           "clip") if not net.get(r)]
    if missing:
        raise CheckpointError(f"stage {stage} needs --model BUNDLE, or the official files: --{missing[0]} is missing")
    return TrainingModel.from_official(e4e=net["e4e"], stylegan2=net.get("stylegan2"),
                                       clipinverter=net.get("clipinverter"), clip=net["clip"], stage=stage,
                                       device=device, dtype=dtype, **fresh)


def loss_files(config: dict) -> dict[str, str | None]:
    """The loss networks' files: given paths, else found in the configured folders (lossnets.find_loss_file)."""
    from ..lossnets import find_loss_file

    hp, given, folders = config["hparams"], config.get("loss_files", {}), config.get("loss_folders") or None
    wanted = ["alexnet", "moco" if hp.get("use_moco") else "arcface"]
    return {k: find_loss_file(k, given.get(k), folders) if k in wanted else None for k in LOSS_KINDS}


def build_parts(config: dict, device: torch.device, dtype: torch.dtype) -> Parts:
    from . import losses as losses_mod
    from . import scores, step
    from .ranger import make_optimizer

    hp = hparams_from(config)
    model = build_model(config, device, dtype)
    files = loss_files(config)
    losses = losses_mod.build(hp, model, arcface=files["arcface"], moco=files["moco"], alexnet=files["alexnet"],
                              device=device, dtype=dtype)
    optimizer = make_optimizer(hp.optim_name, model.trainable_parameters(), hp.learning_rate)
    return Parts(model, losses, optimizer, step.train_step, step.validation_step, step.Batch, model.tokenize,
                 scores.edit_scores)
