"""Fidelity: in float32 (on the CPU, or on CLIPINVERTER_TEST_DEVICE), our pipeline computes what the official
code computes (relative L2 < 1e-4) on the parity kit, at StyleGAN sizes 256 and 1024. `w_hat - w` is checked on
its own: it is small next to w, and an error in the edit could hide inside a tolerance on w_hat."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clipinverter_core.images import uint8_to_encoder_input
from clipinverter_core.pipeline import CLIPInverter

from conftest import DEVICE, rel_l2

TOL = 1e-4


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
    _, g, _, r, _ = run
    assert rel_l2(r.text_embedding, g["text_features"]) < TOL


def test_inversion_w(run):
    _, g, _, r, _ = run
    assert rel_l2(r.w, g["w"]) < TOL


def test_edit_w_hat_and_its_delta(run):
    _, g, _, r, _ = run
    assert rel_l2(r.w_hat, g["w_hat"]) < TOL
    assert rel_l2(r.w_hat - r.w, g["w_hat"] - g["w"]) < TOL


@pytest.mark.parametrize("name", ["image", "image_no_remap", "image_plain"])
def test_images(run, name):
    kit, g, _, _, images = run
    ours = images[name]
    assert ours.shape == (2, 3, kit.size, kit.size)
    assert torch.isfinite(ours).all()
    if kit.size == 256:
        assert rel_l2(ours, g[name]) < TOL
    else:  # the 1024 golden file keeps the central crop and a 4x4 average pool
        assert rel_l2(_crop(ours), g[name + "_crop"]) < TOL
        assert rel_l2(_pool4(ours), g[name + "_pool4"]) < TOL


def test_one_image_at_a_time_matches_the_batch(run):
    kit, g, _, r, _ = run
    model = CLIPInverter.from_bundle(kit.bundle, DEVICE, "fp32", sections=("encoder", "adapter"))
    x = uint8_to_encoder_input(g["input_uint8"][1:])
    w, feats = model.invert(x)
    w_hat = model.edit_codes(w, feats, r.text_embedding[1:])
    assert rel_l2(w_hat - w, g["w_hat"][1:] - g["w"][1:]) < TOL
