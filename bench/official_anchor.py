"""The official CLIPInverter edit as the speed anchor of bench/gpu_check.py, from a checkout of the official
repository (johnberg1/CLIPInverter) carried in an ignored folder (default `official/`; bench/gpu_prepare.sh
writes its Python files there). Nothing of it is in this repository: it is imported from that folder at run time.

It builds the official modules (`models.e4e_features.pSp`, `adapter.adapter_decoder.CLIPAdapterWithDecoder`)
from the parity kit's official-format files, loads them with the official loaders, and runs `infer.py`'s edit
minus CLIP and alignment: the text embedding is given (cached), the images are given on the device.
"""
from __future__ import annotations

import os
import sys
from argparse import Namespace

import torch

KIT_FILES = {"clipinverter": "pretrained_faces.pt", "e4e": "e4e_ffhq_encode.pt"}
EDIT_SCALE = 0.1  # infer.py: w_hat = w + 0.1 * encoder.forward_features(features)


def available(folder: str | None) -> bool:
    return bool(folder) and os.path.isfile(os.path.join(folder, "models", "e4e_features.py"))


class OfficialEdit:
    """callable(x, t) -> (w, w_hat, image): the official edit of x (B, 3, 256, 256) in [-1, 1] towards t (B, 512)."""

    def __init__(self, folder: str, kit_dir: str, device: torch.device):
        folder = os.path.abspath(folder)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        from adapter.adapter_decoder import CLIPAdapterWithDecoder  # noqa: E402 - the official code
        from models.e4e_features import pSp

        path = os.path.join(kit_dir, KIT_FILES["clipinverter"])
        opts = dict(torch.load(path, map_location="cpu", weights_only=True)["opts"])
        opts.update(checkpoint_path=path, pretrained_e4e_path=os.path.join(kit_dir, KIT_FILES["e4e"]),
                    is_training_from_stage_one=False, device=str(device))
        opts = Namespace(**opts)
        self.encoder = pSp(opts).eval().to(device)
        self.adapter = CLIPAdapterWithDecoder(opts).eval().to(device)
        self.device = device

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, t: torch.Tensor):
        w, features = self.encoder.forward(x, return_latents=True)
        features = self.adapter.adapter(features, t)
        w_hat = w + EDIT_SCALE * self.encoder.forward_features(features)
        image, _ = self.adapter.decoder([w_hat], input_is_latent=True, return_latents=False, randomize_noise=False,
                                        truncation=1, txt_embed=t)
        return w, w_hat, image

    def weight_bytes(self) -> int:
        tensors = list(self.encoder.state_dict().values()) + list(self.adapter.state_dict().values())
        return sum(t.numel() * t.element_size() for t in tensors)
