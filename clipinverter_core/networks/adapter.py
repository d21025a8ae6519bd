"""CLIPAdapter: text-conditioned modulation of the encoder's three feature maps.

Per level (coarse on c3, 512 ch; medium on c2, 256 ch; fine on c1, 128 ch), replacing the map:
    c' = LeakyReLU_0.01( GroupNorm_32( Conv3x3_nobias( PixelNorm(c) ) ) * (1 + exp(f_gamma(t))) + f_beta(t) )
    f(t) = Linear(512, 512) -> LayerNorm(512) -> LeakyReLU_0.01 -> Linear(512, C)
Names follow `pretrained_faces.pt` after stripping 'adapter.'.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .e4e import Features
from .layers import PixelNorm

EMBED_DIM = 512
EDIT_SCALE = 0.1       # w_hat = w + 0.1 * E_s(adapter(features, t)): the official constant, in inference and training
GROUPS = 32
LRELU_SLOPE = 0.01
LEVELS = ("coarse", "medium", "fine")   # c3, c2, c1
LEVEL_CHANNELS = {"coarse": 512, "medium": 256, "fine": 128}


def _film_mlp(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(EMBED_DIM, EMBED_DIM), nn.LayerNorm(EMBED_DIM), nn.LeakyReLU(LRELU_SLOPE),
                         nn.Linear(EMBED_DIM, channels))


class TextModulationModule(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm = nn.GroupNorm(GROUPS, channels)
        self.gamma_function = _film_mlp(channels)
        self.beta_function = _film_mlp(channels)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))
        gamma = self.gamma_function(t).exp()[:, :, None, None]
        beta = self.beta_function(t)[:, :, None, None]
        return F.leaky_relu(x * (1 + gamma) + beta, LRELU_SLOPE)


class SubTextMapper(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.pixelnorm = PixelNorm()
        self.modulation_module_list = nn.ModuleList([TextModulationModule(channels)])

    def forward(self, x, t):
        x = self.pixelnorm(x)
        for m in self.modulation_module_list:
            x = m(x, t)
        return x


class CLIPAdapter(nn.Module):
    """`levels` names the mappers the checkpoint holds (the official opts can drop any of them)."""

    def __init__(self, levels=LEVELS):
        super().__init__()
        self.levels = tuple(lv for lv in LEVELS if lv in levels)
        for lv in self.levels:
            setattr(self, f"{lv}_mapping", SubTextMapper(LEVEL_CHANNELS[lv]))

    def forward(self, feats: Features, t: torch.Tensor) -> Features:
        """Modulates the maps whose mappers the checkpoint holds; the others pass through."""
        c1, c2, c3 = feats
        t = t.to(c1.dtype)
        if "coarse" in self.levels:
            c3 = self.coarse_mapping(c3, t)
        if "medium" in self.levels:
            c2 = self.medium_mapping(c2, t)
        if "fine" in self.levels:
            c1 = self.fine_mapping(c1, t)
        return Features(c1, c2, c3)
