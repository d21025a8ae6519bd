"""Safetensors bundles: one file per model holding every network CLIPInverter needs.

All floating-point tensors are float32, so that loading is a zero-copy memory map of the file.
Keys: `encoder.*` (e4e, official names without 'encoder.'), `adapter.*`, `generator.*` (StyleGAN2 + CLIPRemapper,
the official `decoder.*` names), `latent_avg` (n_latent, 512), `clip.*` (CLIP ViT-B/32, OpenAI names).
Metadata (all strings): format, format_version, stylegan_size, n_latent, components (JSON list),
adapter_levels (JSON list), sources (JSON list of {role, file, sha256, bytes}), created_by.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Iterable, Mapping

import torch
from torch import nn

from ..errors import CheckpointError
from ..fileio import atomic_output

FORMAT = "clipinverter.bundle"
FORMAT_VERSION = 1
PREFIXES = {"encoder": "encoder.", "adapter": "adapter.", "generator": "generator.", "clip": "clip."}


@dataclass
class Bundle:
    path: str
    metadata: dict
    tensors: dict[str, torch.Tensor]

    @property
    def stylegan_size(self) -> int:
        return int(self.metadata["stylegan_size"])

    @property
    def adapter_levels(self) -> list[str]:
        return json.loads(self.metadata.get("adapter_levels", "[]"))

    def section(self, name: str) -> dict[str, torch.Tensor]:
        """The tensors of one network, prefix stripped."""
        p = PREFIXES[name]
        return {k[len(p):]: v for k, v in self.tensors.items() if k.startswith(p)}


def fmt_shape(shape) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def check_state_dict(module: nn.Module, sd: Mapping[str, torch.Tensor], what: str) -> None:
    """Strict key and shape check; raises CheckpointError naming the first offending key."""
    expected = module.state_dict()
    for k, v in expected.items():
        if k not in sd:
            raise CheckpointError(f"{what}: missing key '{k}' (expected shape {fmt_shape(v.shape)})")
        if tuple(sd[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{what}: key '{k}' has shape {fmt_shape(sd[k].shape)}, "
                                  f"expected {fmt_shape(v.shape)}")
    for k, v in sd.items():
        if k not in expected:
            raise CheckpointError(f"{what}: unexpected key '{k}' (shape {fmt_shape(v.shape)}); "
                                  "is this a checkpoint of another model?")


def load_strict(module: nn.Module, sd: Mapping[str, torch.Tensor], what: str) -> nn.Module:
    """Checks, then loads with strict=True, assigning the tensors (modules may be built on 'meta')."""
    check_state_dict(module, sd, what)
    module.load_state_dict(dict(sd), strict=True, assign=True)
    return module


def save_bundle(path: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Writes atomically: a temporary file in the same folder, renamed when complete."""
    from safetensors.torch import save_file

    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), **metadata}
    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    with atomic_output(path) as tmp:
        save_file(tensors, tmp, metadata=meta)

def read_metadata(path: str) -> dict:
    """The bundle's metadata, read from the header alone."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
    except FileNotFoundError:
        raise
    except Exception as e:  # safetensors raises its own error type for bad headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({_first_line(e)}); "
                              "is it truncated? Convert it again.") from None
    _check_format(path, meta)
    return meta


def load_bundle(path: str, device: str | torch.device = "cpu", sections: Iterable[str] | None = None,
                mmap: bool = True) -> Bundle:
    """Reads a bundle (all sections, or only `sections`, e.g. ('generator',)) onto `device`.

    On the CPU, `mmap=True` maps the file (zero-copy: pages are read on first use). The file may then be
    replaced by a rename (as our writers do) but not overwritten in place while the tensors live;
    `mmap=False` copies every tensor into memory, for long-lived processes such as a ComfyUI server."""
    from safetensors import safe_open

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no bundle at {path}")
    meta = read_metadata(path)
    want = tuple(PREFIXES[s] for s in sections) if sections is not None else None
    tensors = {}
    try:
        with safe_open(path, framework="pt", device=str(device)) as f:
            for k in f.keys():
                if want is None or k.startswith(want) or (k == "latent_avg" and "encoder." in want):
                    t = f.get_tensor(k)
                    tensors[k] = t if mmap or t.device.type != "cpu" else t.clone()
    except Exception as e:
        raise CheckpointError(f"{path}: could not read its tensors ({_first_line(e)}); "
                              "the file may be truncated. Convert it again.") from None
    return Bundle(path, meta, tensors)


def _check_format(path: str, meta: dict) -> None:
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a CLIPInverter bundle (no '{FORMAT}' metadata); make one with "
                              "`python -m clipinverter_core convert`")
    version = meta.get("format_version", "?")
    if version != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: bundle format version {version}, this code reads version {FORMAT_VERSION}; "
                              "convert the official files again with this version")


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__
