"""Pivotal tuning through the API (refine_identity, with_tuning, the tuned-weights file) on a stand-in bundle:
tuning lowers the reconstruction losses, the tuned model decodes closer to the photo, the base model is left as it
was, the file round-trips and is refused on another bundle, the stop and the cancel work, and ComfyUI's inference
mode does not get in the way. The numerics against the official coaches are in test_tuning_golden.py."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from clipinverter_core.errors import CheckpointError, InputError
from clipinverter_core.lossnets import load_lpips
from clipinverter_core.pipeline import CLIPInverter
from clipinverter_core.tuning import (PHOTO, CLIP, load_tuning, refine_identity, save_tuning, synthesis_parameters,
                                      with_tuning)


@pytest.fixture(scope="module")
def model(standin256):
    return CLIPInverter.from_bundle(standin256, "cpu")


@pytest.fixture(scope="module")
def lpips(lossnet_factory):
    return load_lpips(lossnet_factory(0)["alexnet"])


@pytest.fixture(scope="module")
def faces(kit256):
    x = torch.from_numpy(kit256.golden["input_uint8"]).permute(0, 3, 1, 2).float() / 255 * 2 - 1
    return x


@pytest.fixture(scope="module")
def tuned_once(model, lpips, faces):
    before = {n: p.clone() for n, p in model.generator.state_dict().items()}
    tuning = refine_identity(model, faces[:1], faces[:1], PHOTO.replace(steps=2), lpips=lpips)
    return tuning, before


def test_tuning_lowers_the_reconstruction_losses_and_leaves_the_model_alone(model, faces, tuned_once):
    tuning, before = tuned_once
    assert tuning.steps_run == 2 and len(tuning.visits) == 2 and tuning.images == 1
    assert tuning.last["lpips"] < tuning.first["lpips"] and tuning.last["l2"] < tuning.first["l2"], tuning.summary()
    assert set(tuning.deltas) == set(synthesis_parameters(model.generator))
    assert all(torch.equal(p, before[n]) for n, p in model.generator.state_dict().items())
    assert len(tuning.base_sha256) == 64
    # the tuned model reproduces the photo better at the pivot than the base model
    w, _ = model.invert(faces[:1])
    base_err = (model.decode(w) - faces[:1]).square().mean()
    tuned_err = (with_tuning(model, tuning).decode(w) - faces[:1]).square().mean()
    assert tuned_err < base_err
    assert torch.equal(model.decode(w), model.decode(w))  # decode again with the base: unchanged


def test_tuned_edit_changes_only_the_decoding(model, faces, tuned_once):
    tuning, _ = tuned_once
    t = model.encode_text(["a person with blonde hair"])
    base = model.edit(faces[:1], t)
    tuned = with_tuning(model, tuning).edit(faces[:1], t)
    assert torch.equal(base.w_hat, tuned.w_hat) and torch.equal(base.latent.conv_codes, tuned.latent.conv_codes)
    assert not torch.equal(base.image, tuned.image)
    assert torch.equal(model.edit(faces[:1], t).image, base.image)  # the base model edits as before
    half = with_tuning(model, tuning, strength=0.0).edit(faces[:1], t)
    assert torch.allclose(half.image, base.image, atol=1e-5)


def test_tuned_weights_file_round_trips_and_is_bound_to_its_bundle(model, faces, tuned_once, tmp_path):
    tuning, _ = tuned_once
    path = tmp_path / "tuned.safetensors"
    save_tuning(str(path), tuning)
    back = load_tuning(str(path))
    assert back.base_sha256 == tuning.base_sha256 and back.settings == tuning.settings
    assert back.first == tuning.first and back.last == tuning.last and back.steps_run == 2
    w, _ = model.invert(faces[:1])
    assert torch.equal(with_tuning(model, back).decode(w), with_tuning(model, tuning).decode(w))
    # tuned weights made on another bundle (another sha256) are refused
    back.base_sha256 = "0" * 64
    with pytest.raises(CheckpointError, match="tune again on it"):
        with_tuning(model, back)
    not_tuning = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(1)}, str(not_tuning))
    with pytest.raises(CheckpointError, match="not a CLIPInverter tuned-weights file"):
        load_tuning(str(not_tuning))


def test_lpips_stop_ends_before_the_backward(model, faces, lpips):
    tuning = refine_identity(model, faces[:1], faces[:1], PHOTO.replace(lpips_stop=10.0), lpips=lpips)
    assert len(tuning.visits) == 1 and tuning.steps_run == 1
    assert all(not d.any() for d in tuning.deltas.values())  # stopped before the first step


def test_clip_mode_visits_every_frame_of_every_step_with_the_regulariser(model, faces, lpips):
    steps = []
    tuning = refine_identity(model, faces, faces, CLIP.replace(steps=1), lpips=lpips,
                             progress=lambda s, n, v: steps.append((s, n)))
    assert [(v.step, v.frame) for v in tuning.visits] == [(0, 0), (0, 1)]
    assert steps == [(1, 1)] and tuning.images == 2
    # the regulariser is zero at the very first visit (nothing tuned yet) and positive after
    v = tuning.visits
    assert v[0].loss == pytest.approx(v[0].l2 + v[0].lpips, rel=1e-6)
    assert v[1].loss > v[1].l2 + v[1].lpips


def test_cancel_stops_the_tuning(model, faces, lpips):
    class Cancelled(Exception):
        pass
    calls = []

    def check():
        calls.append(1)
        if len(calls) == 2:
            raise Cancelled
    before = {n: p.clone() for n, p in model.generator.state_dict().items()}
    with pytest.raises(Cancelled):
        refine_identity(model, faces[:1], faces[:1], PHOTO.replace(steps=10), lpips=lpips, check=check)
    assert all(torch.equal(p, before[n]) for n, p in model.generator.state_dict().items())


def test_tuning_runs_inside_inference_mode(standin256, lossnet_factory, faces):
    """ComfyUI executes nodes under torch.inference_mode(): the model and LPIPS are loaded there too."""
    with torch.inference_mode():
        model = CLIPInverter.from_bundle(standin256, "cpu")
        lp = load_lpips(lossnet_factory(0)["alexnet"])
        tuning = refine_identity(model, faces[:1], faces[:1], PHOTO.replace(steps=1), lpips=lp)
        w, _ = model.invert(faces[:1])
        tuned = with_tuning(model, tuning).decode(w)
    assert tuning.steps_run == 1 and torch.isfinite(tuned).all()


def test_bad_settings_and_shapes_are_one_line_errors(model, faces, lpips):
    with pytest.raises(InputError, match="steps"):
        PHOTO.replace(steps=0)
    with pytest.raises(InputError, match="lr"):
        PHOTO.replace(lr=float("nan"))
    with pytest.raises(InputError, match="generator's 256x256"):
        refine_identity(model, faces[:1], faces[:1, :, :128, :128], lpips=lpips)
