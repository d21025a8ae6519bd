"""Conversion of the official checkpoints into one safetensors bundle.

    pretrained_faces.pt   {'state_dict': {'adapter.*', 'decoder.*'}, 'opts'}      -> adapter.*, generator.*
    e4e_ffhq_encode.pt    {'state_dict': {'encoder.*', ...}, 'latent_avg'}        -> encoder.*, latent_avg
    ViT-B-32.pt           OpenAI TorchScript (through open_clip), or a state dict in
                          .pt / .bin / .safetensors                                -> clip.*

The files are read and checked by official.py; this module adds the provenance and writes the bundle.
"""
from __future__ import annotations

import hashlib
import json
import os

from .. import __version__
from ..networks import n_latent_for
from .bundle import save_bundle
from .official import clip_state_dict, clipinverter_sections, e4e_sections


def sha256_of(path: str, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def source_record(role: str, path: str) -> dict:
    """Where a network came from, as bundles record it: {role, file, sha256, bytes}."""
    return {"role": role, "file": os.path.basename(path), "sha256": sha256_of(path), "bytes": os.path.getsize(path)}


def convert(clipinverter: str, e4e: str, clip: str, out: str, log=print) -> dict:
    """Reads the three official files, checks every key and shape, writes one bundle. Returns its metadata."""
    log(f"reading {clipinverter}")
    adapter_sd, gen_sd, size, levels = clipinverter_sections(clipinverter)
    n_latent = n_latent_for(size)
    log(f"reading {e4e}")
    enc_sd, latent_avg = e4e_sections(e4e, n_latent, f"the generator in {clipinverter}")
    log(f"reading {clip}")
    clip_sd = clip_state_dict(clip)

    tensors = {}
    tensors.update({"encoder." + k: v.float() if v.is_floating_point() else v for k, v in enc_sd.items()})
    tensors.update({"adapter." + k: v.float() for k, v in adapter_sd.items()})
    tensors.update({"generator." + k: v.float() for k, v in gen_sd.items()})
    tensors["latent_avg"] = latent_avg.float().contiguous()
    tensors.update({"clip." + k: v.float() for k, v in clip_sd.items()})  # float32: zero-copy loading
    log("hashing the source files")
    sources = [source_record(role, p) for role, p in (("clipinverter", clipinverter), ("e4e", e4e), ("clip", clip))]
    meta = {
        "stylegan_size": str(size),
        "n_latent": str(n_latent),
        "components": json.dumps(["encoder", "adapter", "generator", "remapper", "latent_avg",
                                  "clip_text", "clip_visual"]),
        "adapter_levels": json.dumps(levels),
        "sources": json.dumps(sources),
        "created_by": f"clipinverter_core {__version__}",
    }
    log(f"writing {out}")
    save_bundle(out, tensors, meta)
    return meta

