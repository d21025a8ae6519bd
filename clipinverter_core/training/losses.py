"""The training losses, term by term as the official coaches compute them (calc_loss in
adapter/training/coach_first_stage.py and coach_second_stage.py), and their sum per pass.

For a pass with output z (y_hat, or y_rec in the cycle pass), target y = x, codes c (w_hat or w_hat_c):
    L = id * ID(z, y) + l2 * L2 + lpips * LPIPS + w_norm * WN(c) + [mismatched] * clip * DIR
with, in stage 2, L2 = MSE(z, y) + 0.35 * MSE(z, z_fixed) and LPIPS likewise (z_fixed: the same codes
rendered without the remapper), and WN computed and logged but not added (unless stage2_adds_w_norm).
A term whose lambda is 0 is neither computed nor logged, as in the coaches. The cycle pass's loss is logged
before its cycle_lambda factor; `loss` = loss_real + loss_cycle.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..lossnets import IdentityNet, PerceptualNet
from ..networks.clip import preprocess_for_clip
from .hparams import HParams

CLIP_UPSAMPLE = 7          # official CLIP input: nearest x7 ...
CLIP_POOL = 8              # ... then average pool 8: 256 -> 224 (kernel StyleGAN_size // 32 with size 256)
DIRECTION_EPS = 1e-6       # n(v) = v / (||v|| + 1e-6) in DirectionalCLIPLoss
TERMS = ("id", "l2", "lpips", "w_norm", "directional")


class L2Loss(nn.Module):
    """MSE(z, y) = mean((z - y)^2) over every element (F.mse_loss)."""

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(z, y)


class LPIPSLoss(nn.Module):
    """LPIPS(z, y) = mean_b d(z_b, y_b), d the AlexNet v0.1 distance summed over its 5 layers
    (lossnets.PerceptualNet); the official criteria/lpips divides the sum over layers and batch by B."""

    def __init__(self, net: PerceptualNet):
        super().__init__()
        self.net = net

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(z, y).mean()


class IdentityLoss(nn.Module):
    """ID(z, y) = mean_b (1 - <f(z_b), f(y_b)>), f the identity net's unit features (ArcFace or MoCo), the
    target's features without gradient. Also returns the logged improvement
    mean_b <f(z_b), f(y_b)> - <f(y_b), f(x_b)> (x = y in training: <f(y), f(x)> = 1)."""

    def __init__(self, net: IdentityNet):
        super().__init__()
        self.net = net

    def forward(self, z: torch.Tensor, y: torch.Tensor, x: torch.Tensor | None = None):
        with torch.no_grad():
            fy = self.net(y)
            fx = fy if x is None or x is y else self.net(x)
        fz = self.net(z)
        target = (fz * fy).sum(1)
        improvement = (target.detach() - (fy * fx).sum(1)).mean()
        return (1 - target).mean(), improvement


class WNormLoss(nn.Module):
    """WN(c) = mean_b ||c_b - w_avg||_F over the (n_latent, 512) code (start_from_latent_avg; without it,
    ||c_b||_F)."""

    def __init__(self, start_from_latent_avg: bool = True):
        super().__init__()
        self.start_from_latent_avg = start_from_latent_avg

    def forward(self, codes: torch.Tensor, latent_avg: torch.Tensor) -> torch.Tensor:
        if self.start_from_latent_avg:
            codes = codes - latent_avg
        return torch.linalg.vector_norm(codes, dim=(1, 2)).sum() / codes.shape[0]


def official_clip_input(img: torch.Tensor) -> torch.Tensor:
    """The coaches' CLIP input: [-1, 1] image, nearest upsampling x7, average pool 8 (256 -> 224), no mean/std.

    Both steps are one linear map per axis, so this is a @ img @ a^T with a = nearest_pool_matrix: the same means
    (float64: 1e-16 apart) without the 7x upsampled image (231 MB at float64, batch 3), which the pool's backward
    kept alive and its gradient doubled."""
    h, w = img.shape[-2:]
    rows = nearest_pool_matrix(h, img)
    cols = rows if w == h else nearest_pool_matrix(w, img)
    return torch.matmul(torch.matmul(rows, img), cols.t())


def nearest_pool_matrix(n: int, like: torch.Tensor) -> torch.Tensor:
    """(n * 7 // 8, n): row i is the mean of rows 8i .. 8i + 7 of the x7 nearest-upsampled axis, i.e. 1/8 on each
    source row j = r // 7 they come from."""
    rows = torch.arange(n * CLIP_UPSAMPLE // CLIP_POOL * CLIP_POOL, device=like.device)
    a = torch.zeros(n * CLIP_UPSAMPLE // CLIP_POOL, n, dtype=like.dtype, device=like.device)
    return a.index_put_((rows // CLIP_POOL, rows // CLIP_UPSAMPLE),
                        torch.full(rows.shape, 1 / CLIP_POOL, dtype=like.dtype, device=like.device), accumulate=True)


def standard_clip_input(img: torch.Tensor) -> torch.Tensor:
    """CLIP's own preprocessing of the [-1, 1] image (networks.clip.preprocess_for_clip on (img + 1) / 2)."""
    return preprocess_for_clip((img + 1) / 2)


class DirectionalCLIPLoss(nn.Module):
    """DIR = mean_b (1 - <dI_b, dT_b>), dI = n(n(C_I(z)) - n(C_I(s))), dT = n(n(t_to) - n(t_from)),
    n(v) = v / (||v|| + 1e-6), C_I the CLIP image tower on `preprocess(img)`, t the raw CLIP text embeddings.
    The source image s carries no gradient."""

    def __init__(self, preprocess: str = "official"):
        super().__init__()
        self.preprocess = official_clip_input if preprocess == "official" else standard_clip_input

    @staticmethod
    def _n(v: torch.Tensor) -> torch.Tensor:
        return v / (v.norm(dim=-1, keepdim=True) + DIRECTION_EPS)

    def forward(self, encode_image: Callable[[torch.Tensor], torch.Tensor], source: torch.Tensor,
                z: torch.Tensor, t_from: torch.Tensor, t_to: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            e_src = self._n(encode_image(self.preprocess(source)))
        e_z = self._n(encode_image(self.preprocess(z)))
        d_img = self._n(e_z - e_src)
        d_txt = self._n(self._n(t_to) - self._n(t_from))
        return (1 - (d_img * d_txt).sum(-1)).mean()


class PassLoss(NamedTuple):
    total: torch.Tensor                 # the pass's loss, times cycle_lambda in the cycle pass
    terms: dict[str, torch.Tensor]      # each computed term, without its lambda (stage 2: with its 0.35 part)
    logs: dict[str, float]              # the coach's log entries of this pass


class TrainingLosses(nn.Module):
    """All terms of one stage with their lambdas (hparams)."""

    def __init__(self, hp: HParams, identity: IdentityNet | None, perceptual: PerceptualNet | None):
        super().__init__()
        self.hp = hp
        self.l2 = L2Loss()
        self.lpips = LPIPSLoss(perceptual) if perceptual is not None else None
        self.identity = IdentityLoss(identity) if identity is not None else None
        self.w_norm = WNormLoss(hp.start_from_latent_avg)
        self.directional = DirectionalCLIPLoss(hp.clip_preprocess)
        if hp.id_lambda > 0 and self.identity is None:
            raise ValueError("id_lambda > 0 needs an identity network (ArcFace or MoCo)")
        if hp.lpips_lambda > 0 and self.lpips is None:
            raise ValueError("lpips_lambda > 0 needs the LPIPS network")

    def terms(self, z, y, codes, latent_avg, encode_image, source, t_from, t_to, mismatched: bool,
              z_fixed=None, x=None) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Every term whose lambda is > 0 (directional only on mismatched steps), unweighted; and extra logs."""
        hp, out, extra = self.hp, {}, {}
        if hp.id_lambda > 0:
            out["id"], extra["id_improve"] = self.identity(z, y, x)
        if hp.l2_lambda > 0:
            out["l2"] = self.l2(z, y) if z_fixed is None else self.l2(z, y) + hp.fixed_render_weight * self.l2(z, z_fixed)
        if hp.lpips_lambda > 0:
            out["lpips"] = self.lpips(z, y) if z_fixed is None else \
                self.lpips(z, y) + hp.fixed_render_weight * self.lpips(z, z_fixed)
        if hp.w_norm_lambda > 0:
            out["w_norm"] = self.w_norm(codes, latent_avg)
        if mismatched and hp.clip_lambda > 0:
            out["directional"] = self.directional(encode_image, source, z, t_from, t_to)
        return out, {k: float(v) for k, v in extra.items()}

    def weighted_sum(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        hp = self.hp
        lambdas = {"id": hp.id_lambda, "l2": hp.l2_lambda, "lpips": hp.lpips_lambda, "directional": hp.clip_lambda,
                   "w_norm": hp.w_norm_lambda if hp.adds_w_norm else 0.0}
        total = 0.0
        for name in TERMS:  # the coaches' order: id, l2, lpips, w_norm, directional
            if name in terms and lambdas[name]:
                total = total + terms[name] * lambdas[name]
        return total if isinstance(total, torch.Tensor) else torch.zeros((), device=next(iter(terms.values())).device)

    def forward(self, pass_name: str, *args, **kwargs) -> PassLoss:
        """pass_name 'real' or 'cycle'; the other arguments as for `terms`."""
        terms, extra = self.terms(*args, **kwargs)
        total = self.weighted_sum(terms)
        logs = {f"id_improve_{pass_name}": extra["id_improve"]} if "id_improve" in extra else {}
        logs.update({f"loss_{name}_{pass_name}": float(v.detach()) for name, v in terms.items()})
        logs[f"loss_{pass_name}"] = float(total.detach())
        if pass_name == "cycle":
            total = total * self.hp.cycle_lambda
        return PassLoss(total, terms, logs)


def build(hp: HParams, model=None, arcface: str | None = None, moco: str | None = None,
          alexnet: str | None = None, device=None, dtype: torch.dtype | None = None) -> TrainingLosses:
    """The losses of `hp`, with their networks loaded (lossnets) on the model's device and dtype by default.
    The identity net is MoCo when hp.use_moco, else ArcFace."""
    from .. import lossnets

    device = device if device is not None else (model.device if model is not None else None)
    dtype = dtype if dtype is not None else (model.dtype if model is not None else torch.float32)
    identity = perceptual = None
    if hp.id_lambda > 0:
        identity = lossnets.load_moco(moco, device, dtype) if hp.use_moco else lossnets.load_arcface(arcface, device, dtype)
    if hp.lpips_lambda > 0:
        perceptual = lossnets.load_lpips(alexnet, device, dtype)
    return TrainingLosses(hp, identity, perceptual)
