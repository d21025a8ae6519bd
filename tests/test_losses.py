"""The loss terms one by one against independent computations of the official formulas (criteria/*.py and
the coaches' calc_loss), the loss networks' loaders, and the dense modulated convolution of training."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from clipinverter_core import lossnets
from clipinverter_core.errors import CheckpointError
from clipinverter_core.networks import Generator
from clipinverter_core.networks.arcface import ArcFaceIRSE50
from clipinverter_core.training.hparams import stage_defaults
from clipinverter_core.training.losses import (DirectionalCLIPLoss, IdentityLoss, TrainingLosses, WNormLoss,
                                               official_clip_input)
from clipinverter_core.training.synthesis import render

D = torch.float64


def _randomise(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    for name, t in module.state_dict().items():
        if t.is_floating_point():
            r = torch.randn(t.shape, generator=g, dtype=t.dtype) * 0.05
            t.copy_(r.abs() + 0.5 if name.endswith("running_var") else r)
    return module


# --- LPIPS -----------------------------------------------------------------------------------------------
def _official_lpips(a, b, features_sd, lin_sd):
    """criteria/lpips as written: z-score, AlexNet ReLU taps 2, 5, 8, 10, 12 (1-based), channel-normalised
    with eps 1e-10, squared difference, the 1x1 linear layer, spatial mean, everything summed, divided by B."""
    feats = torchvision.models.alexnet(weights=None).features.double()
    feats.load_state_dict(features_sd)
    mean = torch.tensor([-.030, -.088, -.188], dtype=D).view(1, 3, 1, 1)
    std = torch.tensor([.458, .448, .450], dtype=D).view(1, 3, 1, 1)

    def taps(x):
        x, out = (x - mean) / std, []
        for i, layer in enumerate(feats, 1):
            x = layer(x)
            if i in (2, 5, 8, 10, 12):
                out.append(x / (torch.sqrt(torch.sum(x ** 2, dim=1, keepdim=True)) + 1e-10))
        return out

    res = [F.conv2d((fa - fb) ** 2, lin_sd[f"lin{i}.model.1.weight"].double()).mean((2, 3), True)
           for i, (fa, fb) in enumerate(zip(taps(a), taps(b)))]
    return torch.sum(torch.cat(res, 0)) / a.shape[0]


def test_lpips_is_the_official_formula_on_random_inputs(tmp_path):
    torch.manual_seed(0)
    features = _randomise(torchvision.models.alexnet(weights=None).features, 1)
    sd = {f"features.{k}": v for k, v in features.state_dict().items()}
    path = str(tmp_path / lossnets.LOSS_FILES["alexnet"])
    torch.save(sd, path)
    net = lossnets.load_lpips(path, dtype=D)
    lin = torch.load(lossnets.lpips_linear_layers_path(), map_location="cpu", weights_only=True)
    a, b = torch.rand(3, 3, 64, 64, dtype=D) * 2 - 1, torch.rand(3, 3, 64, 64, dtype=D) * 2 - 1
    ours = net(a, b)
    with torch.no_grad():
        ref = _official_lpips(a, b, {k[len("features."):]: v.double() for k, v in sd.items()}, lin)
    assert ours.shape == (3,)
    assert abs(float(ours.detach().mean()) - float(ref)) <= 1e-13 * float(ref)
    assert float(net(a, a).abs().max()) == 0.0
    assert not net.training and not any(p.requires_grad for p in net.parameters())


# --- identity ----------------------------------------------------------------------------------------------
def _adaptive_pool_matrix(n_in: int, n_out: int) -> np.ndarray:
    """AdaptiveAvgPool1d as a matrix: output i averages inputs floor(i n_in / n_out) .. ceil((i+1) n_in / n_out)."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, lo:hi] = 1 / (hi - lo)
    return m


def test_arcface_reads_the_official_face_crop_pooled_to_112():
    """ArcFaceIdentity feeds its net img[:, :, 35:223, 32:220] average-pooled to 112x112 (a flattening net
    shows exactly what it is fed)."""
    img = torch.rand(2, 3, 256, 256, dtype=D) * 2 - 1
    seen = lossnets.ArcFaceIdentity(torch.nn.Flatten())(img)
    pool = _adaptive_pool_matrix(188, 112)
    ref = np.einsum("ih,bchw,jw->bcij", pool, img[:, :, 35:223, 32:220].numpy(), pool).reshape(2, -1)
    np.testing.assert_allclose(seen.numpy(), ref, rtol=1e-12, atol=1e-14)


def test_arcface_features_are_unit_norm_and_frozen_to_outside_pixels():
    net = _randomise(ArcFaceIRSE50(), 2).eval()
    ident = lossnets.ArcFaceIdentity(net).eval()
    img = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        ours = ident(img)
        assert ours.shape == (1, 512)
        torch.testing.assert_close(ours.norm(dim=1), torch.ones(1), rtol=1e-6, atol=0)
        outside = img.clone()
        outside[:, :, :35] = 0.3
        outside[:, :, :, 220:] = -0.7
        assert torch.equal(ident(outside), ours)
        inside = img.clone()
        inside[:, :, 100, 100] += 0.5
        assert not torch.equal(ident(inside), ours)


class _ProjectionNet(lossnets.IdentityNet):
    """A stand-in identity net: unit-normalised linear features of the 8x8-pooled image."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3 * 64, 16).double()

    def forward(self, img):
        return F.normalize(self.proj(F.adaptive_avg_pool2d(img, 8).flatten(1)), dim=1)


def test_identity_loss_and_its_logged_improvement():
    torch.manual_seed(3)
    net = _ProjectionNet()
    z, y, x = (torch.rand(4, 3, 32, 32, dtype=D) for _ in range(3))
    loss, improvement = IdentityLoss(net)(z, y, x)
    fz, fy, fx = net(z), net(y), net(x)
    ref = sum(1 - float(fz[i] @ fy[i]) for i in range(4)) / 4
    ref_improvement = sum(float(fz[i] @ fy[i]) - float(fy[i] @ fx[i]) for i in range(4)) / 4
    assert abs(float(loss) - ref) < 1e-14 and abs(float(improvement) - ref_improvement) < 1e-14
    z.requires_grad_(True)
    y.requires_grad_(True)
    IdentityLoss(net)(z, y)[0].backward()
    assert z.grad is not None and y.grad is None   # the target's features carry no gradient


def test_w_norm_is_the_batch_mean_of_frobenius_distances_to_w_avg():
    codes, avg = torch.randn(3, 14, 512, dtype=D), torch.randn(14, 512, dtype=D)
    ref = sum(float(np.linalg.norm((codes[i] - avg).numpy())) for i in range(3)) / 3
    assert abs(float(WNormLoss(True)(codes, avg)) - ref) < 1e-12
    assert abs(float(WNormLoss(False)(codes, avg)) - float(codes.flatten(1).norm(dim=1).mean())) < 1e-12


# --- directional CLIP --------------------------------------------------------------------------------------
def test_official_clip_input_is_nearest_x7_then_8x8_means():
    img = torch.rand(1, 3, 256, 256, dtype=D)
    ours = official_clip_input(img)
    assert ours.shape == (1, 3, 224, 224)
    up = np.repeat(np.repeat(img.numpy(), 7, axis=2), 7, axis=3)
    ref = up.reshape(1, 3, 224, 8, 224, 8).mean((3, 5))
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-13)


def test_directional_loss_formula():
    torch.manual_seed(4)
    proj = torch.randn(3 * 16 * 16, 8, dtype=D)
    encode = lambda im: F.adaptive_avg_pool2d(im, 16).flatten(1) @ proj  # noqa: E731
    src, z = torch.rand(3, 3, 256, 256, dtype=D) * 2 - 1, torch.rand(3, 3, 256, 256, dtype=D) * 2 - 1
    t_from, t_to = torch.randn(3, 8, dtype=D), torch.randn(3, 8, dtype=D)
    n = lambda v: v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-6)  # noqa: E731
    e_s, e_z = (encode(official_clip_input(i)).numpy() for i in (src, z))
    d_img, d_txt = n(n(e_z) - n(e_s)), n(n(t_to.numpy()) - n(t_from.numpy()))
    ref = np.mean(1 - (d_img * d_txt).sum(-1))
    assert abs(float(DirectionalCLIPLoss("official")(encode, src, z, t_from, t_to)) - ref) < 1e-13
    std = DirectionalCLIPLoss("standard")(encode, src, z, t_from, t_to)
    assert abs(float(std) - ref) > 1e-6   # the option changes the preprocessing


# --- the per-pass sum --------------------------------------------------------------------------------------
class _FakePerceptual(torch.nn.Module):
    def forward(self, a, b):
        return (a - b).abs().flatten(1).mean(1)


def _pass(stage: int, mismatched: bool, pass_name: str = "real", **changes):
    torch.manual_seed(5)
    hp = stage_defaults(stage).replace(**changes)
    losses = TrainingLosses(hp, _ProjectionNet(), _FakePerceptual())
    z, y, fixed = (torch.rand(2, 3, 64, 64, dtype=D) for _ in range(3))
    codes, avg = torch.randn(2, 4, 8, dtype=D), torch.randn(4, 8, dtype=D)
    encode = lambda im: F.adaptive_avg_pool2d(im, 4).flatten(1)  # noqa: E731
    t = torch.randn(2, 48, dtype=D)
    out = losses(pass_name, z, y, codes, avg, encode, y, t, t.flip(0), mismatched,
                 z_fixed=fixed if stage == 2 else None)
    return hp, out, (z, y, fixed)


def test_stage1_sum_and_logs():
    hp, out, _ = _pass(1, True)
    ref = sum(out.terms[k] * lam for k, lam in (("id", hp.id_lambda), ("l2", hp.l2_lambda), ("lpips", hp.lpips_lambda),
                                                  ("w_norm", hp.w_norm_lambda), ("directional", hp.clip_lambda)))
    assert abs(float(out.total) - float(ref)) < 1e-12
    assert set(out.logs) == {"loss_id_real", "id_improve_real", "loss_l2_real", "loss_lpips_real",
                             "loss_w_norm_real", "loss_directional_real", "loss_real"}
    _, matched, _ = _pass(1, False)
    assert "loss_directional_real" not in matched.logs and "directional" not in matched.terms


def test_stage2_adds_the_fixed_render_terms_and_not_w_norm():
    hp, out, (z, y, fixed) = _pass(2, True)
    assert abs(float(out.terms["l2"]) - float(F.mse_loss(z, y) + 0.35 * F.mse_loss(z, fixed))) < 1e-14
    lp = _FakePerceptual()
    assert abs(float(out.terms["lpips"]) - float(lp(z, y).mean() + 0.35 * lp(z, fixed).mean())) < 1e-14
    ref = sum(out.terms[k] * lam for k, lam in (("id", hp.id_lambda), ("l2", hp.l2_lambda),
                                                  ("lpips", hp.lpips_lambda), ("directional", hp.clip_lambda)))
    assert "loss_w_norm_real" in out.logs and abs(float(out.total) - float(ref)) < 1e-12
    _, with_wn, _ = _pass(2, True, stage2_adds_w_norm=True)
    assert abs(float(with_wn.total) - float(ref + hp.w_norm_lambda * out.terms["w_norm"])) < 1e-12


def test_cycle_loss_is_logged_before_its_lambda_and_zero_lambdas_are_skipped():
    _, out, _ = _pass(1, True, "cycle", cycle_lambda=2.0, id_lambda=0.0)
    assert abs(float(out.total) - 2.0 * out.logs["loss_cycle"]) < 1e-12
    assert "loss_id_cycle" not in out.logs and "id" not in out.terms


# --- loaders -----------------------------------------------------------------------------------------------
def test_loss_networks_load_from_the_recipe_layouts(lossnet_factory):
    paths = lossnet_factory(0)
    img = torch.rand(2, 3, 256, 256) * 2 - 1
    for kind, load, dim in (("arcface", lossnets.load_arcface, 512), ("moco", lossnets.load_moco, 2048)):
        net = load(paths[kind])
        assert not net.training and not any(p.requires_grad for p in net.parameters())
        with torch.no_grad():
            f = net(img)
        assert f.shape == (2, dim)
        torch.testing.assert_close(f.norm(dim=1), torch.ones(2), rtol=1e-5, atol=0)
    moco = lossnets.load_moco(paths["moco"])
    with torch.no_grad():
        ref = F.normalize(moco.net(F.interpolate(img, size=224)), dim=1)
        torch.testing.assert_close(moco(img), ref)
    assert float(lossnets.load_lpips(paths["alexnet"])(img, img.flip(0)).min()) > 0


def test_find_loss_file(tmp_path):
    name = lossnets.LOSS_FILES["arcface"]
    with pytest.raises(CheckpointError, match=name):
        lossnets.find_loss_file("arcface", folders=[str(tmp_path)])
    with pytest.raises(CheckpointError, match="no arcface file"):
        lossnets.find_loss_file("arcface", explicit=str(tmp_path / "x.pth"))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / name).write_bytes(b"")
    assert lossnets.find_loss_file("arcface", folders=[str(tmp_path / "a"), str(tmp_path / "b")]) == \
        os.path.join(str(tmp_path / "b"), name)


def test_a_foreign_file_is_one_clear_error(tmp_path):
    path = str(tmp_path / "model_ir_se50.pth")
    torch.save({"conv.weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="ArcFace"):
        lossnets.load_arcface(path)


# --- the training synthesis --------------------------------------------------------------------------------
def test_dense_modulated_convolution_equals_the_official_grouped_one():
    torch.manual_seed(6)
    gen = _randomise(Generator(16, True), 7).double().requires_grad_(False)
    for p in gen.lambdas:
        p.data.fill_(0.05)
    gen.affine_mlps.requires_grad_(True)
    gen.lambdas.requires_grad_(True)
    w = torch.randn(2, gen.n_latent, 512, dtype=D, requires_grad=True)
    t = torch.randn(2, 512, dtype=D)
    params = [w, *gen.affine_mlps.parameters(), *gen.lambdas.parameters()]
    outs = []
    for dense in (False, True):
        y = render(gen, w, t, dense)
        outs.append((y.detach(), torch.autograd.grad((y * torch.cos(y)).sum(), params)))
    (y0, g0), (y1, g1) = outs
    assert float((y1 - y0).norm() / y0.norm()) < 1e-12
    for a, b in zip(g0, g1):
        assert float((b - a).norm() / a.norm()) < 1e-11
    assert not math.isnan(float(y1.sum()))
