"""Fidelity: in float32 (on the CPU, or on CLIPINVERTER_TEST_DEVICE), our pipeline computes what the official
code computes (relative L2 < 1e-4) on the parity kit, at StyleGAN sizes 256 and 1024. `w_hat - w` is checked on
its own: it is small next to w, and an error in the edit could hide inside a tolerance on w_hat."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clipinverter_core.images import uint8_to_encoder_input
from clipinverter_core.pipeline import CLIPInverter

from conftest import DEVICE, rel_l2, report_figure

TOL = 1e-4


def check(kit, name: str, ours, golden) -> None:
    """rel L2 < TOL; the figure goes to the run's summary (CI's log carries README's "about 5e-6")."""
    err = rel_l2(ours, golden)
    report_figure("relative L2 against the official code, float32, CPU (bound 1e-4)",
                  f"size {kit.size:>4}  {name:<22} {err:.1e}")
    assert err < TOL, (name, err)


def _crop(x):
    return x[:, :, 384:640, 384:640]


def _pool4(x):
    return F.avg_pool2d(x, 4)


@pytest.fixture(scope="module", params=[256, 1024])
def run(request, kit_factory):
    kit = kit_factory(request.param)
    g = kit.golden
    model = CLIPInverter.from_bundle(kit.bundle, DEVICE, "fp32")
    tokens = model.tokenizer(list(g["captions"]))
    t = model.encode_text(list(g["captions"]))
    result = model.edit(uint8_to_encoder_input(g["input_uint8"]), t)
    images = {"image": result.image, "image_no_remap": model.decode(result.w_hat), "image_plain": model.decode(result.w)}
    return kit, g, tokens, result, images


def test_tokenizer_matches_clip_tokenize(run):
    _, g, tokens, _, _ = run
    np.testing.assert_array_equal(tokens.numpy(), g["tokens"])


def test_text_embedding(run):
    kit, g, _, r, _ = run
    check(kit, "text embedding", r.text_embedding, g["text_features"])


def test_inversion_w(run):
    kit, g, _, r, _ = run
    check(kit, "w", r.w, g["w"])


def test_edit_w_hat_and_its_delta(run):
    kit, g, _, r, _ = run
    check(kit, "w_hat", r.w_hat, g["w_hat"])
    check(kit, "w_hat - w", r.w_hat - r.w, g["w_hat"] - g["w"])


@pytest.mark.parametrize("name", ["image", "image_no_remap", "image_plain"])
def test_images(run, name):
    kit, g, _, _, images = run
    ours = images[name]
    assert ours.shape == (2, 3, kit.size, kit.size)
    assert torch.isfinite(ours).all()
    if kit.size == 256:
        check(kit, name, ours, g[name])
    else:  # the 1024 golden file keeps the central crop and a 4x4 average pool
        check(kit, name + " (crop)", _crop(ours), g[name + "_crop"])
        check(kit, name + " (pool 4)", _pool4(ours), g[name + "_pool4"])


def test_one_image_at_a_time_matches_the_batch(run):
    kit, g, _, r, _ = run
    model = CLIPInverter.from_bundle(kit.bundle, DEVICE, "fp32", sections=("encoder", "adapter"))
    x = uint8_to_encoder_input(g["input_uint8"][1:])
    w, feats = model.invert(x)
    w_hat = model.edit_codes(w, feats, r.text_embedding[1:])
    check(kit, "w_hat - w, batch of 1", w_hat - w, g["w_hat"][1:] - g["w"][1:])
