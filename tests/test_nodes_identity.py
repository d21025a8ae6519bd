"""Refine Identity, Save Tuning and Load Tuning, without ComfyUI (comfy_stubs.py): the tuned model is a clone of the
ModelPatcher whose weight patches are the tuning's changes, so the base model keeps its pixels while both are
used in one graph; downstream nodes work unchanged on it; the tuned weights round-trip through the files; progress
and cancel work."""
from __future__ import annotations

import os

import pytest
import torch

from comfy_stubs import RECORD, InterruptProcessingException
from test_nodes import _fresh_record, comfy, face, model, nodes, run  # noqa: F401 - fixtures


@pytest.fixture(scope="module")
def alexnet(comfy, lossnet_factory):  # noqa: F811
    folder = comfy[2] / "models" / "clipinverter"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "alexnet-owt-7be5be79.pth").exists():
        os.symlink(lossnet_factory(0)["alexnet"], folder / "alexnet-owt-7be5be79.pth")


@pytest.fixture(scope="module")
def refined(nodes, model, face, alexnet):  # noqa: F811
    RECORD.reset()
    tuned, pivot = nodes["CLIPInverterRefineIdentity"].execute(model, face[1], "photo", 1, 0.0, 0.0, "default").args
    return tuned, pivot, list(RECORD.progress)


def test_refine_identity_tunes_a_patched_clone_and_leaves_the_base_model_as_it_was(nodes, model, refined):  # noqa: F811
    tuned, pivot, bars = refined
    assert bars[-1].current == bars[-1].total == 1  # the bar counts the tuning's steps
    assert tuned.patcher is not model.patcher and tuned.patcher.model is model.patcher.model  # one set of weights
    assert len(tuned.patcher.patches) == 94 and not model.patcher.patches
    base_before = run(nodes, "CLIPInverterDecode", model, pivot)
    tuned_img = run(nodes, "CLIPInverterDecode", tuned, pivot)
    base_after = run(nodes, "CLIPInverterDecode", model, pivot)   # the patches swapped out again
    assert not torch.equal(tuned_img, base_before)
    torch.testing.assert_close(base_after, base_before, rtol=0, atol=1e-6)
    assert torch.equal(run(nodes, "CLIPInverterDecode", tuned, pivot), tuned_img)
    # the tuned model decodes as the API's tuned model does (fused buffers derived from the patched weights)
    tuning = tuned.tunings[0][0]
    from clipinverter_core.tuning import with_tuning
    model.on_device()  # the base weights in place (the networks are shared: the last decode patched them)
    api = with_tuning(model.inverter, tuning).decode(pivot.w).clamp(-1, 1).add(1).div(2).movedim(1, -1)
    torch.testing.assert_close(tuned_img, api, rtol=0, atol=1e-5)


def test_downstream_nodes_edit_with_the_tuned_generator(nodes, model, face, refined):  # noqa: F811
    tuned = refined[0]
    t = run(nodes, "CLIPInverterEncodeText", tuned, "blonde hair")
    edits = {}
    for name, m in (("base", model), ("tuned", tuned)):
        latent = run(nodes, "CLIPInverterRemap", m, run(nodes, "CLIPInverterInvert", m, face[1], t, 1.0, True, True,
                                                         True), t, 1.0)
        edits[name] = (latent, run(nodes, "CLIPInverterDecode", m, latent))
    assert torch.equal(edits["base"][0].w, edits["tuned"][0].w)  # the codes are the model's own
    assert not torch.equal(edits["base"][1], edits["tuned"][1])  # only the decoding changes


def test_save_and_load_tuning_round_trip_and_strength(comfy, nodes, model, refined):  # noqa: F811
    tuned, pivot, _ = refined
    out = nodes["CLIPInverterSaveTuning"].execute(tuned, "person")
    name = out.ui["text"][0]
    assert name.startswith("person_") and name.endswith(".safetensors")
    assert name in nodes["CLIPInverterLoadTuning"].define_schema().inputs[1].options["options"]
    assert nodes["CLIPInverterLoadTuning"].validate_inputs(name) is True
    loaded = run(nodes, "CLIPInverterLoadTuning", model, name, 1.0)
    assert torch.equal(run(nodes, "CLIPInverterDecode", loaded, pivot), run(nodes, "CLIPInverterDecode", tuned, pivot))
    zero = run(nodes, "CLIPInverterLoadTuning", model, name, 0.0)
    torch.testing.assert_close(run(nodes, "CLIPInverterDecode", zero, pivot),
                               run(nodes, "CLIPInverterDecode", model, pivot), rtol=0, atol=1e-6)
    with pytest.raises(Exception, match="carries no tuning"):
        nodes["CLIPInverterSaveTuning"].execute(model, "none")
    tuning = tuned.tunings[0][0]
    tuning.base_sha256, real = "f" * 64, tuning.base_sha256
    try:
        with pytest.raises(Exception, match="tune again on it"):  # the pack's own CheckpointError
            model.with_tuning(tuning)
    finally:
        tuning.base_sha256 = real


def test_cancel_stops_the_tuning(nodes, model, face, alexnet):  # noqa: F811
    RECORD.interrupt_after_checks = 1  # cancel pressed during the first step
    with pytest.raises(InterruptProcessingException):
        nodes["CLIPInverterRefineIdentity"].execute(model, face[1], "photo", 5, 0.0, 0.0, "default")
    assert RECORD.checks == 2
