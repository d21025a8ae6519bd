"""The edit as a Python API: load a bundle once, then encode texts, invert, edit, remap, decode.

    model = CLIPInverter.from_bundle("clipinverter_faces.safetensors", device="cuda")
    t = model.encode_text(["this person has blonde hair"])           # (1, 512) raw CLIP embedding
    result = model.edit(x, t)                                          # x: (B, 3, 256, 256) in [-1, 1]
    result.image                                                       # (B, 3, size, size), unclamped

Steps (CLIPINVERTER.md):  w = E(x) + w_avg;  w_hat = w + alpha * 0.1 * E_s(adapter(features, t));
image = G(remap(w_hat, t, beta)).
"""
from __future__ import annotations

import torch

from .batching import features_once_per_face, map_chunks, pair_indices, take
from . import devices
from .errors import CheckpointError, InputError
from .inputs import check_prompts
from .latents import EditResult, Latent, level_rows
from .networks import (LEVELS, CLIPAdapter, Encoder4Editing, Features, Generator, channels_of, head_width_of,
                       n_latent_for)
from .networks.adapter import EDIT_SCALE
from .weights.bundle import Bundle, load_bundle, load_strict

TEXT_CHUNK = 256  # prompts per CLIP call
NO_REMAPPER = "this bundle has no CLIPRemapper (a stage-1 training result)"
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
IMPLS = ("fast", "ref")  # fast: fused networks (BENCHMARKS.md); ref: the official formulation, step for step

__all__ = ["CLIPInverter", "Latent", "EditResult", "level_rows", "pair_indices", "PRECISIONS", "IMPLS", "TEXT_CHUNK"]


class CLIPInverter:
    """The networks of one bundle on one device, in one precision. Stateless between calls.

    `impl="fast"` (default) fuses the encoder and the generator after loading (folded BatchNorm, batched
    head passes, modulation folded into dense convs, channels_last); `impl="ref"` keeps the official formulation.
    Both compute the same edit (float32: relative L2 ~1e-6 apart). `compile` (a torch.compile mode) compiles the
    backbone, the heads and the synthesis on first use, and falls back to them uncompiled where it cannot."""

    def __init__(self, bundle: Bundle, device: str | torch.device | None = None, precision: str = "fp32",
                 impl: str = "fast", compile: str | None = None):
        if precision not in PRECISIONS and precision != "auto":
            raise ValueError(f"precision must be 'auto' or one of {sorted(PRECISIONS)}, got {precision!r}")
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        self.impl = impl
        self.device = torch.device(device or devices.default_device())
        if precision == "auto":
            precision = devices.auto_precision(self.device)
        self.dtype = PRECISIONS[precision]
        # The fast path in bf16/fp16 is mixed precision: the generator's weights and W+ codes stay float32, its
        # layers from 64x64 up compute in self.dtype, and so do the encoder and CLIP in fp16; in bf16 (8-bit
        # mantissa) the encoder and CLIP stay float32: w alone would move by ~1e-2, the text embedding by 1.2e-2.
        # impl="ref" casts every network.
        mixed = impl == "fast" and precision != "fp32"
        self.gen_dtype = torch.float32 if mixed else self.dtype
        self.enc_dtype = torch.float32 if mixed and precision == "bf16" else self.dtype
        self.precision = precision
        self.metadata = bundle.metadata
        self.bundle_path = bundle.path
        self.size = bundle.stylegan_size
        self.n_latent = n_latent_for(self.size)
        self.encoder = self.adapter = self.generator = self._clip = None
        self._tokenizer = None
        what = bundle.path
        tensors = bundle.tensors
        if any(k.startswith("encoder.") for k in tensors):
            enc_sd = bundle.section("encoder")
            self.encoder = self._load(Encoder4Editing, (self.n_latent, head_width_of(enc_sd)), enc_sd,
                                      f"{what} (encoder)", self.enc_dtype)
            if "latent_avg" not in tensors:
                raise CheckpointError(f"{what}: no 'latent_avg' beside the encoder")
            # a buffer of the encoder (not in its state dict), so it moves wherever the encoder is moved
            self.encoder.register_buffer("latent_avg", tensors["latent_avg"].to(self.device, self.enc_dtype),
                                         persistent=False)
        if any(k.startswith("adapter.") for k in tensors):
            self.adapter = self._load(CLIPAdapter, (bundle.adapter_levels,), bundle.section("adapter"),
                                      f"{what} (adapter)", self.enc_dtype)
        if any(k.startswith("generator.") for k in tensors):
            gen_sd = bundle.section("generator")
            args = (self.size, "lambdas.0" in gen_sd, channels_of(gen_sd, self.size))
            self.generator = self._load(Generator, args, gen_sd, f"{what} (generator)", self.gen_dtype,
                                        low_precision=self.dtype if mixed else None)
        self._clip_sd = bundle.section("clip") or None
        # the heavy stages, run through these (compiled.py: opt-in torch.compile with an eager fallback)
        self._backbone = self.encoder.backbone if self.encoder is not None else None
        self._heads = self.encoder.heads if self.encoder is not None else None
        self._synthesis = self.generator.synthesis if self.generator is not None else None
        self.compile = compile
        if compile:
            from .compiled import CompiledStage
            for name in ("_backbone", "_heads", "_synthesis"):
                if getattr(self, name) is not None:
                    setattr(self, name, CompiledStage(getattr(self, name), compile, name[1:]))

    @property
    def latent_avg(self) -> torch.Tensor | None:
        """e4e's average code (n_latent, 512), on the encoder's device."""
        return None if self.encoder is None else self.encoder.latent_avg

    @classmethod
    def from_bundle(cls, path: str, device: str | torch.device | None = None, precision: str = "fp32",
                    sections=None, mmap: bool = True, impl: str = "fast", compile: str | None = None) -> "CLIPInverter":
        """Loads a bundle; `sections` (e.g. ('generator',)) loads only those networks; `mmap=False` copies the
        weights into memory instead of mapping the file (see weights.load_bundle); `compile` (e.g. "default",
        "reduce-overhead") compiles the heavy stages with torch.compile on first use (compiled.py)."""
        return cls(load_bundle(path, "cpu", sections, mmap), device, precision, impl, compile)

    def _load(self, cls, args, sd, what, dtype, **fuse_args):
        with torch.device("meta"):
            module = cls(*args)
        load_strict(module, sd, what)
        module = module.to(self.device, dtype).eval().requires_grad_(False)
        if self.impl == "fast" and hasattr(module, "fuse"):
            module.fuse(**fuse_args)  # after the cast: folds in float32, stores in the module's dtype
        return module

    # --- CLIP -------------------------------------------------------------------------------------------------
    @property
    def clip(self):
        """The open_clip CLIP model, built on first use (text and image towers)."""
        if self._clip is None:
            if self._clip_sd is None:
                raise CheckpointError("this bundle holds no CLIP weights")
            from .networks.clip import build_clip
            self._clip = build_clip(self._clip_sd, self.device, self.enc_dtype)  # CLIP: the encoder's dtype
        return self._clip

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from .networks.clip import Tokenizer
            self._tokenizer = Tokenizer()
        return self._tokenizer

    @devices.inference
    def encode_text(self, texts: list[str] | str, chunk: int = TEXT_CHUNK) -> torch.Tensor:
        """Raw (not normalised) CLIP text embeddings, (B, 512) float32. Prompts longer than CLIP's 77 tokens
        are cut (with one warning); empty prompts are an error."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        check_prompts(texts)
        tokens = devices.to_device(self.tokenizer(texts), self.device)
        clip = self.clip
        outs = map_chunks(lambda a, b: clip.encode_text(tokens[a:b]).float(), len(texts), chunk)
        return torch.cat(outs)

    @devices.inference
    def encode_image(self, images01: torch.Tensor) -> torch.Tensor:
        """Raw CLIP image embeddings of reference pictures (B, 3, H, W) in [0, 1], (B, 512) float32."""
        from .networks.clip import preprocess_for_clip
        x = preprocess_for_clip(devices.to_device(images01, self.device, torch.float32)).to(self.enc_dtype)
        return self.clip.encode_image(x).float()

    # --- inversion and edit -----------------------------------------------------------------------------------
    def _need(self, name):
        if getattr(self, name) is None:
            raise CheckpointError(f"this model was loaded without its {name}")
        return getattr(self, name)

    @devices.inference
    def invert(self, x: torch.Tensor) -> tuple[torch.Tensor, Features]:
        """x (B, 3, 256, 256) in [-1, 1] -> (w (B, n_latent, 512) with latent_avg, backbone features)."""
        feats = self.features(x)
        return self._heads(feats) + self.latent_avg, feats

    @devices.inference
    def edit_codes(self, w: torch.Tensor, feats: Features, t: torch.Tensor, strength: float = 1.0,
                   levels=LEVELS) -> torch.Tensor:
        """CLIPAdapter edit: w_hat = w + strength * 0.1 * E_s(adapter(features, t)), on the W+ rows of `levels`
        (coarse: rows 0-2, medium: 3-6, fine: 7 on, as the e4e heads read them); the other rows keep w."""
        adapter = self._need("adapter")
        self._need("encoder")
        t = devices.to_device(t, self.device, self.enc_dtype)
        delta = self._on_levels(self._heads(adapter(feats, t)), levels)
        return w + (strength * EDIT_SCALE) * delta

    @devices.inference
    def features(self, x: torch.Tensor) -> Features:
        """x (B, 3, 256, 256) in [-1, 1] -> the encoder backbone's three feature maps."""
        self._need("encoder")
        if x.ndim != 4 or x.shape[1:] != (3, 256, 256):
            raise InputError(f"the encoder takes (B, 3, 256, 256) images, got {tuple(x.shape)}")
        return self._backbone(devices.to_device(x, self.device, self.enc_dtype))

    @devices.inference
    def edit_features(self, feats: Features, t: torch.Tensor, strength: float = 1.0,
                      levels=LEVELS) -> tuple[torch.Tensor, torch.Tensor]:
        """(w, w_hat) from backbone features: the inversion and the CLIPAdapter edit. The fast path runs the
        heads once over both feature sets (a batch of 2B); the CLI, the API and the nodes all edit through here,
        so they give the same numbers."""
        self._need("encoder")
        edited = self._need("adapter")(feats, devices.to_device(t, self.device, self.enc_dtype))
        if self.impl == "fast":
            n = feats.c1.shape[0]
            codes = self._heads(Features(*(torch.cat(pair) for pair in zip(feats, edited))))
            codes, delta = codes[:n], codes[n:]
        else:
            codes, delta = self._heads(feats), self._heads(edited)
        w = codes + self.latent_avg
        return w, w + (strength * EDIT_SCALE) * self._on_levels(delta, levels)

    def _on_levels(self, delta: torch.Tensor, levels) -> torch.Tensor:
        """delta on the W+ rows of `levels`, zero on the others."""
        rows = set(level_rows(levels, self.n_latent))
        if len(rows) == self.n_latent:
            return delta
        delta = delta.clone()
        for r in range(self.n_latent):  # slices, not an index list: nothing is copied from the host
            if r not in rows:
                delta[:, r].zero_()
        return delta

    @property
    def has_remapper(self) -> bool:
        """Whether the bundle holds CLIPRemapper weights (a stage-1 training result has none)."""
        return self.generator is not None and self.generator.has_remapper

    def contents(self) -> str:
        """What was loaded, in a few words: e.g. 'encoder, adapter (coarse, medium, fine), generator 1024, no
        CLIPRemapper, CLIP'."""
        parts = ["encoder"] if self.encoder is not None else []
        if self.adapter is not None:
            parts.append(f"adapter ({', '.join(self.adapter.levels)})")
        if self.generator is not None:
            parts += [f"generator {self.size}", "CLIPRemapper" if self.has_remapper else "no CLIPRemapper"]
        return ", ".join(parts + (["CLIP"] if self._clip_sd is not None else []))

    @devices.inference
    def remap(self, latent: Latent | torch.Tensor, t: torch.Tensor, strength: float = 1.0) -> Latent:
        """CLIPRemapper: returns the latent with its styled-conv codes remapped towards t."""
        gen = self._need("generator")
        if not self.has_remapper:
            raise CheckpointError(NO_REMAPPER + ": edit with remap strength 0, or train stage 2")
        if isinstance(latent, torch.Tensor):
            latent = Latent(latent)
        w = devices.to_device(latent.w, self.device, self.gen_dtype)
        conv = devices.to_device(latent.conv_codes, self.device, self.gen_dtype)
        return Latent(w, gen.remap(conv, devices.to_device(t, self.device, self.gen_dtype), strength))

    @devices.inference
    def decode(self, latent: Latent | torch.Tensor) -> torch.Tensor:
        """Synthesis with the fixed noise buffers: (B, 3, size, size), unclamped, float32."""
        gen = self._need("generator")
        if isinstance(latent, torch.Tensor):
            latent = Latent(latent)
        rgb = gen.split_wplus(devices.to_device(latent.w, self.device, self.gen_dtype))[1]
        return self._synthesis(devices.to_device(latent.conv_codes, self.device, self.gen_dtype), rgb).float()

    @devices.inference
    def edit(self, x: torch.Tensor, t: torch.Tensor, strength: float = 1.0, remap_strength: float = 1.0,
             levels=LEVELS, chunk: int | None = None, progress=None, check=None) -> EditResult:
        """The whole edit of CLIPInverter. x: (B, 3, 256, 256) in [-1, 1]; t: (B, 512) or (1, 512), broadcast
        by `pair_indices`. Runs in chunks of `chunk` pairs (all at once by default), halving the chunk on
        out-of-memory errors; `progress(done, total)` after each chunk, `check()` before each (to cancel)."""
        idx_x, idx_t = pair_indices(x.shape[0], t.shape[0])

        def run(a, b):
            ts = devices.to_device(take(t, idx_t[a:b]), self.device)
            w, w_hat = self.edit_features(features_once_per_face(self.features, x, idx_x[a:b]), ts, strength, levels)
            latent = self.remap(w_hat, ts, remap_strength) if remap_strength != 0 else Latent(w_hat)
            return ts.float(), w.float(), w_hat.float(), latent, self.decode(latent)

        parts = map_chunks(run, len(idx_x), chunk, progress, check)
        t_all, w, w_hat, latents, images = zip(*parts)
        conv = None if latents[0].conv is None else torch.cat([lat.conv for lat in latents])
        return EditResult(torch.cat(t_all), torch.cat(w), torch.cat(w_hat),
                          Latent(torch.cat([lat.w for lat in latents]), conv), torch.cat(images))
