"""Pivotal tuning against the official coaches (../shared/parity, README "Pivotal tuning"): danielroich/PTI's
SingleIDCoach on one photo and rotemtzaban/STIT's Coach on a clip of three frames, both run in float64 on the
parity kit's stand-in weights. Rebuilt from each file and the recipe at the file's seed (its images, pivots,
hyper-parameters and the regulariser's z draws); nothing here depends on seed 0's values.

Each to a relative 1e-8: every visit's losses (total, L2, LPIPS), the gradient at the first optimiser step (norm
and sum of each of the 94 tuned tensors, tensors up to 20,000 values whole), each tensor's change after the last
step (likewise), and the tuned generator's image at each pivot. The measured errors are printed."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from clipinverter_core.lossnets import load_lpips
from clipinverter_core.networks import Generator
from clipinverter_core.tuning import PivotalTuner, from_official, synthesise
from clipinverter_core.weights.bundle import load_bundle, load_strict
from conftest import PARITY, _need_kit, report_figure
from training_kit import GradCheck, Timer, load_golden, peak_rss_gb, rel, summarise

TOL = 1e-8
WHOLE = 20_000            # the files keep tensors up to this size whole
PREFIX = "synthesis.decoder."


def _generator(bundle_path: str, size: int) -> tuple[Generator, torch.Tensor]:
    """The kit's generator (the official decoder's weights, converted) in float64, and latent_avg."""
    bundle = load_bundle(bundle_path, "cpu", ("generator", "encoder"))   # latent_avg comes with the encoder
    gen = load_strict(Generator(size), bundle.section("generator"), "kit generator").double().eval()
    return gen.requires_grad_(False), bundle.tensors["latent_avg"].double()


@pytest.mark.parametrize("coach", ["pti", "stit"])
def test_tuning_follows_the_official_coach(coach, kit_factory, lossnet_factory):
    _need_kit()
    g = load_golden(PARITY, f"pti_golden_{coach}_256.npz")
    assert str(g["coach"]) == coach
    seed, size = int(g["seed"]), int(g["size"])
    gen, latent_avg = _generator(kit_factory(size, seed).bundle, size)
    assert np.array_equal(latent_avg.numpy(), g["latent_avg"]), "the kit's latent_avg is not the file's"
    lpips = load_lpips(lossnet_factory(seed)["alexnet"], dtype=torch.float64)
    settings = from_official(json.loads(str(g["hparams"])), coach)
    assert settings.steps == int(g["steps"])
    draws = iter(g["z_samples"][i:i + 1] for i in range(len(g["z_samples"])))
    tuner = PivotalTuner(gen, lpips, latent_avg[0], settings, draws=draws)
    names = sorted(tuner.params)
    assert sorted(PREFIX + n for n in names) == sorted(str(k) for k in g["trained_keys"])
    shapes = {PREFIX + n: p.shape for n, p in tuner.params.items()}
    first_grad: dict = {}

    def inspect(visit, params):
        if not first_grad:
            first_grad.update(summarise({PREFIX + n: p.grad for n, p in params.items()}, shapes, WHOLE))

    images = torch.from_numpy(g["images_uint8"]).permute(0, 3, 1, 2).double() / 255 * 2 - 1
    pivots = torch.from_numpy(g["pivots"])
    with Timer() as t:
        tuning = tuner.run(pivots, images, inspect=inspect)
    assert next(draws, None) is None, "the regulariser did not draw every z the coach drew"

    errors: list[str] = []
    worst = {}
    steps, frames = g["loss/loss"].shape
    assert [(v.step, v.frame) for v in tuning.visits] == [(s, f) for s in range(steps) for f in range(frames)]
    for key in ("loss", "l2", "lpips"):
        worst[key] = 0.0
        for v in tuning.visits:
            e = rel(getattr(v, key), float(g[f"loss/{key}"][v.step, v.frame]))
            worst[key] = max(worst[key], e)
            if e > TOL:
                errors.append(f"step {v.step + 1} frame {v.frame} {key}: rel {e:.2e}")
    grad = GradCheck(g, TOL)
    grad("grad1", first_grad, shapes)
    change = GradCheck(g, TOL)
    change("delta", summarise({PREFIX + n: d for n, d in tuning.deltas.items()}, shapes, WHOLE), shapes)
    with torch.no_grad():
        final = synthesise(tuner.gen, pivots).numpy()
    image_err = float(np.linalg.norm(final - g["final_image"]) / np.linalg.norm(g["final_image"]))
    if image_err > TOL:
        errors.append(f"final image: rel {image_err:.2e}")
    report_figure("pivotal tuning against the official coaches, float64 (bound 1e-8)",
                  f"{coach}: worst relative error: losses {worst['loss']:.2e} (l2 {worst['l2']:.2e}, "
                  f"lpips {worst['lpips']:.2e}); first gradient norm {grad.worst['norm']:.2e} "
                  f"sum {grad.worst['sum']:.2e} full {grad.worst['full']:.2e}; change norm {change.worst['norm']:.2e} "
                  f"sum {change.worst['sum']:.2e} full {change.worst['full']:.2e}; final image {image_err:.2e} | "
                  f"{len(tuning.visits)} visits in {t.s:.1f} s, peak RSS {peak_rss_gb():.2f} GB")
    assert not errors + grad.errors + change.errors, "\n".join((errors + grad.errors + change.errors)[:20])
