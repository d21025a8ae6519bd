"""What the edit hands around: the W+ codes (Latent), the whole edit's result (EditResult), and the W+ rows each
encoder level writes (level_rows)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import InputError
from .networks import LEVELS
from .networks.e4e import COARSE_END, MEDIUM_END


@dataclass
class Latent:
    """W+ codes, optionally with the styled-conv codes already remapped by the CLIPRemapper.

    w:    (B, n_latent, 512), the codes the encoder (and the adapter's edit) produce.
    conv: (B, n_latent - 1, 512) or None: per-conv codes after remapping; None means "taken from w".
          ToRGB layers always read w.
    """
    w: torch.Tensor
    conv: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.w.shape[0]

    @property
    def conv_codes(self) -> torch.Tensor:
        """The styled-conv codes it decodes with: the remapped ones, or the first n_latent - 1 W+ rows."""
        return self.conv if self.conv is not None else self.w[:, :-1]

    def index(self, idx) -> "Latent":
        return Latent(self.w[idx], None if self.conv is None else self.conv[idx])

    def to(self, *args, **kwargs) -> "Latent":
        return Latent(self.w.to(*args, **kwargs), None if self.conv is None else self.conv.to(*args, **kwargs))


@dataclass
class EditResult:
    text_embedding: torch.Tensor  # (B, 512)
    w: torch.Tensor               # (B, n_latent, 512) inversion, latent_avg included
    w_hat: torch.Tensor           # (B, n_latent, 512) edited codes
    latent: Latent                # w_hat with the remapped conv codes
    image: torch.Tensor           # (B, 3, size, size), unclamped

    @staticmethod
    def cat(results: list["EditResult"]) -> "EditResult":
        """The results of several edits as one batch, in order."""
        convs = [r.latent.conv for r in results]
        conv = None if any(c is None for c in convs) else torch.cat(convs)
        return EditResult(torch.cat([r.text_embedding for r in results]), torch.cat([r.w for r in results]),
                          torch.cat([r.w_hat for r in results]), Latent(torch.cat([r.latent.w for r in results]), conv),
                          torch.cat([r.image for r in results]))


def level_rows(levels, n_latent: int) -> list[int]:
    """The W+ rows each level's heads write: coarse [0, 3) from c3, medium [3, 7) from p2, fine [7, n) from p1."""
    bounds = {"coarse": (0, COARSE_END), "medium": (COARSE_END, MEDIUM_END), "fine": (MEDIUM_END, n_latent)}
    for lv in levels:
        if lv not in bounds:
            raise InputError(f"unknown level {lv!r}: use {', '.join(LEVELS)}")
    return [r for lv in LEVELS if lv in levels for r in range(*bounds[lv])]
