"""A run's checkpoint -> a bundle that `edit`, `info` and the nodes load like a converted official one.

The bundle holds the networks the run started from with the trained tensors in place (TrainingModel.
state_for_bundle()), in the weights.py layout, and its training provenance in the metadata: `training` (JSON:
stage, steps, data, split, hyper-parameters, seed, precision, run folder) and `sources` (the files the networks
came from, with their sha256: the base bundle's, or the official files').
"""
from __future__ import annotations

import json
import os

import torch

from .. import __version__
from ..weights.official import adapter_levels, section, size_from_generator_keys
from ..networks import n_latent_for
from ..weights.bundle import save_bundle
from . import checkpoint
from .parts import build_model

BUNDLE_NAME = "bundle.safetensors"


def bundle_metadata(tensors: dict[str, torch.Tensor], config: dict, step: int, data_order: dict) -> dict[str, str]:
    """The weights.py metadata of these tensors, with the run's provenance."""
    gen = {k[len("generator."):] for k in tensors if k.startswith("generator.")}
    size = size_from_generator_keys({k: None for k in gen}, "the exported generator")
    components = [c for c, present in (
        ("encoder", any(k.startswith("encoder.") for k in tensors)),
        ("adapter", any(k.startswith("adapter.") for k in tensors)),
        ("generator", bool(gen)), ("remapper", "lambdas.0" in gen), ("latent_avg", "latent_avg" in tensors),
        ("clip_text", any(k.startswith("clip.transformer.") for k in tensors)),
        ("clip_visual", any(k.startswith("clip.visual.") for k in tensors))) if present]
    levels = adapter_levels(section(tensors, "adapter."))
    training = {"stage": int(config["stage"]), "steps": step, "data": config.get("data"),
                "n_train": data_order.get("n_train"), "train_names_hash": data_order.get("train_names_hash"),
                "split": config.get("split"), "hparams": config.get("hparams"), "seed": config.get("seed"),
                "precision": config.get("precision"), "run_dir": config.get("out"),
                "world_size": config.get("world_size", 1)}
    base = [s for s in config.get("sources", [])]
    return {"stylegan_size": str(size), "n_latent": str(n_latent_for(size)), "components": json.dumps(components),
            "adapter_levels": json.dumps(levels), "sources": json.dumps(base), "training": json.dumps(training),
            "created_by": f"clipinverter_core {__version__} (trained: stage {config['stage']}, {step} steps)",
            **({"standin": "1"} if config.get("standin") else {})}


def export_model(model, state: checkpoint.RunState, output: str) -> dict[str, str]:
    """Writes the bundle of `model` holding `state`'s trained tensors (loaded in place)."""
    trained = dict(model.trainable_named_parameters())
    with torch.no_grad():
        for k, p in trained.items():
            p.copy_(state.params[k])
    tensors = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype)
               for k, v in model.state_for_bundle().items()}
    meta = bundle_metadata(tensors, state.config, state.step, state.data_order)
    save_bundle(output, tensors, meta)
    return meta


def export_run(run_dir: str, output: str | None = None) -> str:
    """RUN_DIR/checkpoint.safetensors -> `output` (default RUN_DIR/bundle.safetensors); returns its path."""
    state = checkpoint.load(checkpoint.checkpoint_path(run_dir))
    model = build_model(state.config, torch.device("cpu"), torch.float32)
    output = output or os.path.join(run_dir, BUNDLE_NAME)
    export_model(model, state, output)
    return output
