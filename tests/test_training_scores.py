"""Validation's edit scores (training/scores.py) are the metrics of `evaluate`, on the run's own networks."""
import pytest
import torch

from clipinverter_core.metrics import SOURCE_TEXT, clip_score, image_embeddings
from clipinverter_core.training.hparams import stage_defaults
from clipinverter_core.training.losses import build
from clipinverter_core.training.model import TrainingModel
from clipinverter_core.training.scores import edit_scores
from clipinverter_core.training.step import Batch


@pytest.fixture(scope="module")
def run(kit_factory, lossnet_factory):
    kit, nets = kit_factory(256), lossnet_factory(0)
    model = TrainingModel.from_bundle(kit.bundle, 1)
    losses = build(stage_defaults(1), model, arcface=nets["arcface"], alexnet=nets["alexnet"])
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 256, 256, generator=g) * 2 - 1
    tokens = model.tokenize(["a woman with red hair", "a man with a beard"])
    return model, losses, Batch(x, tokens, torch.roll(tokens, 1, 0), True)


def test_an_unchanged_edit_is_the_same_face_with_no_distance_and_no_direction(run):
    model, losses, batch = run
    s = edit_scores(model, losses, batch, {"edit": batch.x})
    assert set(s) == {"metric_clip_score", "metric_directional", "metric_identity", "metric_lpips"}
    assert s["metric_identity"] == pytest.approx(1, abs=1e-5)
    assert s["metric_lpips"] == pytest.approx(0, abs=1e-6) and s["metric_directional"] == 0
    ref = clip_score(image_embeddings(model.clip, batch.x), model.encode_text(batch.tokens_target).float())
    assert s["metric_clip_score"] == pytest.approx(float(ref.mean()), abs=1e-6)
    assert SOURCE_TEXT  # the neutral text the directional score starts from


def test_a_changed_edit_moves_identity_down_and_distance_up(run):
    model, losses, batch = run
    noise = torch.randn(batch.x.shape, generator=torch.Generator().manual_seed(1))
    s = edit_scores(model, losses, batch, {"edit": (batch.x + 0.8 * noise).clamp(-1, 1)})
    assert s["metric_identity"] < 1 - 1e-4 and s["metric_lpips"] > 1e-3 and s["metric_directional"] != 0
