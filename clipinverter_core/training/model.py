"""The networks of a training run: the frozen encoder, CLIP and generator, and the trainable part.

    stage 1: adapter trainable; decoder = the plain StyleGAN2 (no remapper)
    stage 2: adapter frozen; decoder = StyleGAN2 + CLIPRemapper, the remapper (affine_mlps, lambdas) trainable
Everything runs the official formulation (the networks as loaded, never `fuse()`d), in float32 or float64,
except that the generator's modulated convolutions run as one dense convolution (synthesis.py: the same
values, without per-sample weights; `model.dense = False` restores the grouped form).
Frozen networks are in eval mode with requires_grad False, and the inversion runs under torch.no_grad, as
in the coaches; so does the whole edit in stage 2, where nothing before the remapper is trained.
Parameter names are the official ones: `adapter.<key>`, `decoder.affine_mlps.<key>`, `decoder.lambdas.<key>`.
"""
from __future__ import annotations

import json
from typing import Iterator, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from ..errors import CheckpointError
from ..networks import LEVELS, CLIPAdapter, Encoder4Editing, Generator, channels_of, head_width_of, n_latent_for
from ..networks.clip import build_clip
from ..networks.adapter import EDIT_SCALE
from ..networks.remapper import remapper_mlp
from ..weights.bundle import Bundle, load_bundle, load_strict
from ..weights.official import (adapter_levels, clip_state_dict, clipinverter_sections, e4e_sections,
                                latent_avg_rows, meta_module, size_from_generator_keys, stylegan2_generator)
from .synthesis import render

LOSS_SIZE = 256                 # the coaches' face_pool: every render is average-pooled to 256x256
FRESH_LAMBDA = 0.05             # the official remapper's initial lambda_k
REMAPPER_PREFIXES = ("affine_mlps.", "lambdas.")
DTYPES = (torch.float32, torch.float64)


class Render(NamedTuple):
    image: torch.Tensor                 # (B, 3, 256, 256), pooled to 256 like the coaches' face_pool
    codes: torch.Tensor                 # w_hat (B, n_latent, 512), latent_avg included
    fixed: torch.Tensor | None = None   # stage 2: the same codes rendered without the remapper (no grad)


def _fresh_remapper(n: int) -> dict[str, torch.Tensor]:
    """The official initialisation of a new CLIPRemapper: PyTorch's default Linear/LayerNorm init (from
    torch's global RNG), lambda_k = 0.05."""
    mlps = nn.ModuleList([remapper_mlp() for _ in range(n)])
    sd = {f"affine_mlps.{k}": v.detach() for k, v in mlps.state_dict().items()}
    sd.update({f"lambdas.{i}": torch.tensor(FRESH_LAMBDA) for i in range(n)})
    return sd


class TrainingModel(nn.Module):
    def __init__(self, encoder: Encoder4Editing, latent_avg: torch.Tensor, clip: nn.Module, adapter: CLIPAdapter,
                 decoder: Generator, stage: int):
        super().__init__()
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        if stage == 2 and not decoder.has_remapper:
            raise ValueError("stage 2 trains the CLIPRemapper: the decoder needs one")
        self.stage = stage
        self.encoder, self.clip, self.adapter, self.decoder = encoder, clip, adapter, decoder
        self.register_buffer("latent_avg", latent_avg.detach().clone())
        self.requires_grad_(False)
        for _, p in self.trainable_named_parameters(all_=True):
            p.data = p.data.clone()       # never train a view of a mapped file
            p.requires_grad_(True)
        self._tokenizer = None
        self.dense = True   # synthesis.py's modulated convolution; False: the generator's grouped (official) one
        self.train()

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_sections(cls, enc_sd: dict, latent_avg: torch.Tensor, clip_sd: dict, adapter_sd: dict | None,
                      gen_sd: dict, stage: int, device=None, dtype: torch.dtype = torch.float32,
                      fresh_remapper: bool = False, what: str = "model") -> "TrainingModel":
        """From state dicts in the official layouts. adapter_sd None: a new adapter (PyTorch's default init);
        stage 2 with a generator without remapper (or fresh_remapper): a new remapper (_fresh_remapper)."""
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        size = size_from_generator_keys(gen_sd, what)
        n_latent = n_latent_for(size)
        encoder = load_strict(meta_module(Encoder4Editing, n_latent, head_width_of(enc_sd)), enc_sd,
                              f"{what} (encoder)")
        latent_avg = latent_avg_rows(latent_avg, n_latent, what)
        if adapter_sd is None:
            adapter = CLIPAdapter(LEVELS)
        else:
            adapter = load_strict(meta_module(CLIPAdapter, adapter_levels(adapter_sd)), adapter_sd,
                                  f"{what} (adapter)")
        plain = {k: v for k, v in gen_sd.items() if not k.startswith(REMAPPER_PREFIXES)}
        channels = channels_of(plain, size)  # CHANNELS, or a narrower stand-in's
        if stage == 1:
            decoder = load_strict(meta_module(Generator, size, False, channels), plain, f"{what} (generator)")
        else:
            has = any(k.startswith("lambdas.") for k in gen_sd)
            remap = {k: v for k, v in gen_sd.items() if k.startswith(REMAPPER_PREFIXES)}
            if fresh_remapper or not has:
                remap = _fresh_remapper(n_latent - 2)
            decoder = load_strict(meta_module(Generator, size, True, channels), {**plain, **remap},
                                  f"{what} (generator)")
        clip = build_clip(clip_sd)
        model = cls(encoder, latent_avg, clip, adapter, decoder, stage)
        return model.to(device=device, dtype=dtype)

    @classmethod
    def from_bundle(cls, path: str | Bundle, stage: int, device=None, dtype: torch.dtype = torch.float32,
                    fresh_adapter: bool = False, fresh_remapper: bool = False) -> "TrainingModel":
        """From a bundle (weights.load_bundle). Stage 1 renders with its generator minus the remapper."""
        b = path if isinstance(path, Bundle) else load_bundle(path)
        if "latent_avg" not in b.tensors:
            raise CheckpointError(f"{b.path}: no 'latent_avg' beside the encoder")
        return cls.from_sections(b.section("encoder"), b.tensors["latent_avg"], b.section("clip"),
                                 None if fresh_adapter else b.section("adapter"), b.section("generator"), stage,
                                 device, dtype, fresh_remapper, b.path)

    @classmethod
    def from_official(cls, e4e: str, clip: str, stage: int, stylegan2: str | None = None,
                      clipinverter: str | None = None, device=None, dtype: torch.dtype = torch.float32,
                      fresh_remapper: bool = False) -> "TrainingModel":
        """From the official files: e4e_ffhq_encode.pt (encoder, latent_avg), ViT-B-32.pt, and
        stage 1: the generator of stylegan2-ffhq-config-f.pt (`g_ema`; else the decoder of `clipinverter`), the
                 adapter of `clipinverter` if given (else a new one);
        stage 2: `clipinverter` (the stage-1 result: adapter and decoder; a new remapper if it has none)."""
        if stage == 2 and not clipinverter:
            raise CheckpointError("stage 2 needs the stage-1 result (--clipinverter or a bundle)")
        adapter_sd, gen_sd, size, source = None, None, 0, clipinverter
        if clipinverter:
            adapter_sd, gen_sd, size, _ = clipinverter_sections(clipinverter, need_remapper=False)
        if stage == 1 and stylegan2:
            (gen_sd, size), source = stylegan2_generator(stylegan2), stylegan2
        if gen_sd is None:
            raise CheckpointError("stage 1 needs a generator: stylegan2 (its 'g_ema') or clipinverter ('decoder.*')")
        enc_sd, latent_avg = e4e_sections(e4e, n_latent_for(size), f"the generator in {source}")
        return cls.from_sections(enc_sd, latent_avg, clip_state_dict(clip), adapter_sd, gen_sd, stage,
                                 device, dtype, fresh_remapper, clipinverter or e4e)

    # --- parameters ---------------------------------------------------------------------------------------
    def trainable_named_parameters(self, all_: bool = False) -> Iterator[tuple[str, nn.Parameter]]:
        """The trained tensors under their official names."""
        if self.stage == 1:
            yield from self.adapter.named_parameters(prefix="adapter")
        else:
            yield from self.decoder.affine_mlps.named_parameters(prefix="decoder.affine_mlps")
            yield from self.decoder.lambdas.named_parameters(prefix="decoder.lambdas")

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.trainable_named_parameters()]

    def train(self, mode: bool = True) -> "TrainingModel":
        """The trained networks follow `mode`; the frozen encoder and CLIP stay in eval mode."""
        super().train(mode)
        self.encoder.eval()
        self.clip.eval()
        return self

    @property
    def device(self) -> torch.device:
        return self.latent_avg.device

    @property
    def dtype(self) -> torch.dtype:
        return self.latent_avg.dtype

    # --- text ---------------------------------------------------------------------------------------------
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from ..networks.clip import Tokenizer
            self._tokenizer = Tokenizer()
        return self._tokenizer

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        return self.tokenizer(list(captions))

    @torch.no_grad()
    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Raw CLIP text embeddings (B, 512), in the model's dtype."""
        return self.clip.encode_text(tokens.to(self.device))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Raw CLIP image embeddings of CLIP-ready inputs (B, 3, 224, 224); gradients flow to the images."""
        return self.clip.encode_image(images)

    # --- the edit -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def invert(self, x: torch.Tensor):
        """x (B, 3, 256, 256) in [-1, 1] -> (w with latent_avg, backbone features), no gradients."""
        feats = self.encoder.backbone(x)
        return self.encoder.heads(feats) + self.latent_avg, feats

    def edit_codes(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """w_hat = w + 0.1 * E_s(adapter(features, t)); no graph kept in stage 2 (the adapter is frozen)."""
        w, feats = self.invert(x)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.stage == 1):
            return w + EDIT_SCALE * self.encoder.heads(self.adapter(feats, t.to(w.dtype)))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> Render:
        """The coaches' forward pass: codes edited towards t, rendered (stage 2: remapped on t) and pooled."""
        w_hat = self.edit_codes(x, t)
        if self.stage == 1:
            return Render(_pool(render(self.decoder, w_hat, dense=self.dense)), w_hat)
        with torch.no_grad():
            fixed = _pool(render(self.decoder, w_hat, dense=self.dense))
        return Render(_pool(render(self.decoder, w_hat, t.to(w_hat.dtype), self.dense)), w_hat, fixed)

    # --- export -------------------------------------------------------------------------------------------
    def state_for_bundle(self) -> dict[str, torch.Tensor]:
        """The tensors of a bundle (weights.py's layout), float32 on the CPU."""
        out = {}
        for prefix, module in (("encoder.", self.encoder), ("adapter.", self.adapter),
                               ("generator.", self.decoder), ("clip.", self.clip)):
            for k, v in module.state_dict().items():
                out[prefix + k] = _export(v)
        out["latent_avg"] = _export(self.latent_avg)
        return out

    def bundle_metadata(self) -> dict[str, str]:
        """The metadata weights.py's bundles carry, for this model (provenance is the exporter's)."""
        components = ["encoder", "adapter", "generator", "latent_avg", "clip_text", "clip_visual"]
        if self.decoder.has_remapper:
            components.insert(3, "remapper")
        return {"stylegan_size": str(self.decoder.size), "n_latent": str(self.decoder.n_latent),
                "components": json.dumps(components), "adapter_levels": json.dumps(list(self.adapter.levels)),
                "created_by": f"clipinverter_core {__version__}"}


def _pool(img: torch.Tensor) -> torch.Tensor:
    return F.adaptive_avg_pool2d(img, LOSS_SIZE)


def _export(v: torch.Tensor) -> torch.Tensor:
    v = v.detach().cpu()
    return (v.float() if v.is_floating_point() else v).contiguous()
