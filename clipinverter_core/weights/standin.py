"""Stand-in random weights in the bundle format, for demos and tests when the real files are absent.

The networks are real; the weights are random (seeded). An edit with them runs every step of the pipeline
and yields a picture of noise-like texture, not a face.
"""
from __future__ import annotations

import json

import torch

from .. import __version__
from ..networks import CLIPAdapter, Encoder4Editing, Generator, LEVELS, n_latent_for
from ..networks.blur import make_kernel
from ..networks.stylegan2 import CHANNELS
from .bundle import save_bundle


def _init(name: str, shape: tuple, g: torch.Generator) -> torch.Tensor:
    leaf = name.rsplit(".", 1)[-1]
    if name.endswith("kernel"):
        return make_kernel(gain=4.0 if shape == (4, 4) and ("upsample" in name or "blur" in name) else 1.0)
    if leaf == "num_batches_tracked":
        return torch.zeros(shape, dtype=torch.int64)
    if leaf == "running_var":
        return torch.ones(shape)
    if leaf == "running_mean":
        return torch.zeros(shape)
    if "lambdas." in name:
        return torch.full(shape, 0.05)
    if leaf == "bias":
        return torch.ones(shape) if name.endswith("modulation.bias") else torch.zeros(shape)
    if len(shape) <= 1:  # norm weights, PReLU slopes, noise strengths
        if name.endswith("noise.weight"):
            return torch.zeros(shape)
        if name.endswith(("input_layer.2.weight", "res_layer.2.weight")):  # PReLU slopes
            return torch.full(shape, 0.25)
        return torch.ones(shape)
    t = torch.randn(shape, generator=g)
    equalised = name.endswith(("conv.weight", "modulation.weight", "linear.weight", "input.input")) \
        or name.startswith("style.") or "noises." in name
    if not equalised:  # plain nn layers: He-like scaling
        fan_in = 1
        for s in shape[1:]:
            fan_in *= s
        t = t / fan_in ** 0.5
    return t


def _random_state(module: torch.nn.Module, g: torch.Generator) -> dict[str, torch.Tensor]:
    return {k: _init(k, tuple(v.shape), g) for k, v in module.state_dict().items()}


def make_standin_bundle(path: str, size: int = 256, seed: int = 0, width: int | None = None) -> dict:
    """Writes the bundle to `path`. `width` caps the generator's feature channels at every resolution and sets the
    width of the encoder's style heads (most of an edit's work): a cheaper bundle for tests. The e4e backbone, the
    adapter and CLIP keep their released shapes. The default keeps the released widths, and their cost."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    g = torch.Generator().manual_seed(seed)
    n_latent = n_latent_for(size)
    channels = None if width is None else {r: min(c, width) for r, c in CHANNELS.items()}
    with torch.device("meta"):
        enc, ada, gen = Encoder4Editing(n_latent, width), CLIPAdapter(LEVELS), Generator(size, channels=channels)
    tensors = {}
    tensors.update({"encoder." + k: v for k, v in _random_state(enc, g).items()})
    tensors.update({"adapter." + k: v for k, v in _random_state(ada, g).items()})
    tensors.update({"generator." + k: v for k, v in _random_state(gen, g).items()})
    tensors["latent_avg"] = torch.randn(n_latent, 512, generator=g) * 0.5
    torch.manual_seed(seed)
    clip = CLIP(512, vision_cfg=CLIPVisionCfg(layers=12, width=768, patch_size=32, image_size=224),
                text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=512, heads=8, layers=12),
                quick_gelu=True)
    tensors.update({"clip." + k: v.half().float() for k, v in clip.state_dict().items()})  # fp16 values, as released
    meta = {
        "stylegan_size": str(size), "n_latent": str(n_latent),
        "components": json.dumps(["encoder", "adapter", "generator", "remapper", "latent_avg",
                                  "clip_text", "clip_visual"]),
        "adapter_levels": json.dumps(list(LEVELS)),
        "sources": json.dumps([{"role": "standin", "file": f"random seed {seed}", "sha256": "", "bytes": 0}]),
        "created_by": f"clipinverter_core {__version__} (STAND-IN RANDOM WEIGHTS)",
        "standin": "1",
    }
    if width is not None:
        meta["standin_width"] = str(width)
    save_bundle(path, tensors, meta)
    return meta
