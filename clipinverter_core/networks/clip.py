"""CLIP ViT-B/32 through open_clip_torch: its model (QuickGELU, as OpenAI trained it) and its tokenizer.

open_clip is imported on first use only: it pulls in timm and torchvision, seconds of import time.
State dicts use the OpenAI key layout (`transformer.resblocks.N...`, `visual.conv1.weight`, ...), which is
also open_clip's layout for this model.
"""
from __future__ import annotations

import logging
import warnings

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

CONTEXT_LENGTH = 77
# The standard CLIP image preprocessing (OpenAI): bicubic resize of the short side, centre crop, normalise.
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)
OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")  # ints in the TorchScript file


def config_from_state_dict(sd: dict) -> dict:
    """Model geometry from the tensor shapes (ViT towers only)."""
    if "visual.proj" not in sd:
        raise ValueError("only ViT CLIP models are supported (no 'visual.proj' in the state dict)")
    patch = sd["visual.conv1.weight"].shape[-1]
    grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    width = sd["ln_final.weight"].shape[0]
    return dict(
        embed_dim=sd["text_projection"].shape[1],
        vision=dict(layers=len([k for k in sd if k.startswith("visual.") and k.endswith(".attn.in_proj_weight")]),
                    width=sd["visual.conv1.weight"].shape[0], patch_size=patch, image_size=patch * grid),
        text=dict(context_length=sd["positional_embedding"].shape[0], vocab_size=sd["token_embedding.weight"].shape[0],
                  width=width, heads=width // 64,
                  layers=len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")})),
    )


def build_clip(sd: dict, device=None, dtype=None):
    """An open_clip CLIP (QuickGELU) holding exactly `sd` (strict)."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    cfg = config_from_state_dict(sd)
    with torch.device("meta"):
        model = CLIP(cfg["embed_dim"], vision_cfg=CLIPVisionCfg(**cfg["vision"]),
                     text_cfg=CLIPTextCfg(**cfg["text"]), quick_gelu=True)
    sd = {k: v for k, v in sd.items() if k not in OPENAI_EXTRA_KEYS}
    model.load_state_dict(sd, strict=True, assign=True)
    n = cfg["text"]["context_length"]
    model.attn_mask = torch.full((n, n), float("-inf")).triu_(1)  # the causal mask (a non-persistent buffer)
    model = model.to(device=device, dtype=dtype)
    return model.eval().requires_grad_(False)


class Tokenizer:
    """open_clip's BPE tokenizer (the same vocabulary and rules as OpenAI's `clip.tokenize`)."""

    warned_long = False  # one warning about cut prompts per run (process), however many models are loaded

    def __init__(self, context_length: int = CONTEXT_LENGTH):
        from open_clip.tokenizer import SimpleTokenizer

        self._tok = SimpleTokenizer(context_length=context_length)
        self.context_length = context_length

    def n_tokens(self, text: str) -> int:
        """Tokens including start and end of text."""
        return len(self._tok.encode(text)) + 2

    def __call__(self, texts: list[str]) -> torch.Tensor:
        longest = max((self.n_tokens(t) for t in texts), default=0)
        if longest > self.context_length and not Tokenizer.warned_long:
            warnings.warn(f"a prompt has {longest} tokens; CLIP reads {self.context_length}, the rest is cut off",
                          stacklevel=3)
            Tokenizer.warned_long = True
        return self._tok(texts)


def preprocess_for_clip(images: torch.Tensor, size: int = 224) -> torch.Tensor:
    """images (B, 3, H, W) in [0, 1] -> CLIP's input: short side resized (bicubic) to `size`, centre crop,
    normalised."""
    h, w = images.shape[2:]
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    x = F.interpolate(images, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[:, :, top:top + size, left:left + size].clamp(0, 1)
    # per channel with Python numbers: a constant tensor would be copied from the host on every call
    return torch.cat([(x[:, c:c + 1] - m) / s for c, (m, s) in enumerate(zip(IMAGE_MEAN, IMAGE_STD))], 1)
