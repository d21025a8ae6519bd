"""A real training run on the tests' stand-in bundle (standin256: the encoder at its released widths, a 64-wide
generator) and the parity kit's stand-in loss networks, through the CLI: 3 steps of stage 1 at batch 1 (2 steps
an epoch: the third is in the second epoch), the same run stopped after 1 (mid-epoch) and resumed, an export that
`info` reads and CLIPInverter edits with. Only the uninterrupted run validates, so the resumed run's weights also show
that validation leaves the training as it found it. Batch 1 keeps the run cheap (its mismatched steps roll a caption
onto itself; the roll is tested in test_training_loop.py); validation reads batches of 2."""
from __future__ import annotations

import json
import os

import pytest
import torch

from clipinverter_core.__main__ import main
from clipinverter_core.training import checkpoint


@pytest.fixture(scope="module")
def runs(standin256, loss_standins, tmp_path_factory):
    from conftest import write_caption_folder

    tmp = tmp_path_factory.mktemp("runs")
    data = write_caption_folder(tmp / "data", 4)  # 2 training images (2 steps an epoch), 2 held out
    common = ["train", "--stage", "1", "--model", standin256, "--data", data, "--loss-models", loss_standins,
              "--batch-size", "1", "--val-batch-size", "2", "--val-fraction", "0.5", "--val-every", "2",
              "--image-every", "1", "--save-every", "1", "--board-every", "1", "--workers", "0", "--no-progress",
              "--seed", "1"]
    a, b = str(tmp / "straight"), str(tmp / "stopped")
    assert main(common + ["--out", a, "--max-steps", "3"]) == 0
    # the stopped and resumed runs neither validate nor export (nothing reads them; 3 validations fewer)
    assert main(common + ["--out", b, "--max-steps", "1", "--val-every", "0", "--no-export"]) == 0
    assert main(["train", "--resume", b, "--max-steps", "3", "--no-export"]) == 0
    return {"straight": a, "resumed": b, "data": data, "bundle": standin256, "losses": loss_standins, "tmp": tmp}


def test_a_resumed_run_ends_with_the_weights_of_one_that_never_stopped(runs):
    a = checkpoint.load(checkpoint.checkpoint_path(runs["straight"]))
    b = checkpoint.load(checkpoint.checkpoint_path(runs["resumed"]))
    assert a.step == b.step == 3 and a.params.keys() == b.params.keys()
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)  # same ops on the same inputs: bit-exact
    for key in a.optimizer["state"]:
        for name, v in a.optimizer["state"][key].items():
            assert torch.equal(v, b.optimizer["state"][key][name]) if isinstance(v, torch.Tensor) \
                else v == b.optimizer["state"][key][name]


def test_the_export_edits_like_a_converted_bundle_and_says_how_it_was_trained(runs, capsys):
    from clipinverter_core.pipeline import CLIPInverter
    from clipinverter_core.weights.bundle import read_metadata

    bundle = os.path.join(runs["straight"], "bundle.safetensors")
    assert main(["info", bundle]) == 0 and "adapter:       coarse, medium, fine" in capsys.readouterr().out
    meta = read_metadata(bundle)
    training = json.loads(meta["training"])
    assert training["stage"] == 1 and training["steps"] == 3 and training["n_train"] == 2
    assert training["hparams"]["learning_rate"] == 5e-4 and training["hparams"]["batch_size"] == 1
    src = json.loads(meta["sources"])
    assert src[0]["role"] == "model" and len(src[0]["sha256"]) == 64
    trained = checkpoint.load(checkpoint.checkpoint_path(runs["straight"])).params
    model = CLIPInverter.from_bundle(bundle, "cpu", impl="ref")
    assert all(torch.equal(model.adapter.state_dict()[k[len("adapter."):]], v) for k, v in trained.items())
    x = torch.zeros(1, 3, 256, 256)  # a stage-1 model has no remapper: edit with remap strength 0
    out = model.edit(x, model.encode_text(["a face with blonde hair"]), remap_strength=0)
    assert out.image.shape == (1, 3, 256, 256) and torch.isfinite(out.image).all()
    again = os.path.join(runs["tmp"], "again.safetensors")
    assert main(["export", runs["straight"], "-o", again]) == 0  # the export command writes the same tensors
    from safetensors.torch import load_file
    ta, tb = load_file(bundle), load_file(again)
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def test_tensorboard_has_every_term_under_the_official_names_and_the_grids_exist(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(os.path.join(runs["straight"], "logs"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for p in ("real", "cycle"):
        assert {f"train/loss_l2_{p}", f"train/loss_lpips_{p}", f"train/loss_id_{p}", f"train/id_improve_{p}",
                f"train/loss_w_norm_{p}", f"train/loss_{p}", f"val/loss_directional_{p}"} <= tags, tags
    assert "train/loss" in tags and [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3]
    for step in (1, 2, 3):
        assert os.path.isfile(os.path.join(runs["straight"], "images", "train", f"{step:07d}.png"))
    assert os.path.isfile(os.path.join(runs["straight"], "images", "val", "0000002.png"))


def test_a_run_folder_is_not_overwritten_and_bad_data_is_one_line(runs, capsys, tmp_path):
    argv = ["train", "--stage", "1", "--model", runs["bundle"], "--data", runs["data"], "--out", runs["straight"]]
    assert main(argv) == 2 and "holds a run already: --resume" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(argv[:-4] + ["--data", str(empty), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "neither images/ + captions/ nor metadata" in err and "\n" not in err


def test_stage_2_trains_a_remapper_on_the_stage_1_export_and_keeps_the_adapter(runs, capsys):
    from safetensors.torch import load_file

    from clipinverter_core.pipeline import CLIPInverter
    from clipinverter_core.weights.bundle import read_metadata

    stage1 = os.path.join(runs["straight"], "bundle.safetensors")
    out = os.path.join(runs["tmp"], "stage2")
    assert main(["train", "--stage", "2", "--model", stage1, "--data", runs["data"], "--loss-models", runs["losses"],
                 "--out", out, "--batch-size", "2", "--val-batch-size", "2", "--val-fraction", "0.5",
                 "--val-every", "1", "--image-every", "1", "--workers", "0", "--no-progress", "--seed", "1",
                 "--max-steps", "1"]) == 0
    ckpt = checkpoint.load(checkpoint.checkpoint_path(out))
    trained = {k.split(".")[1] for k in ckpt.params}  # the official names: decoder.affine_mlps, decoder.lambdas
    assert ckpt.step == 1 and trained == {"affine_mlps", "lambdas"}  # the remapper alone
    bundle = os.path.join(out, "bundle.safetensors")
    before, after = load_file(stage1), load_file(bundle)
    adapter = [k for k in before if k.startswith("adapter.")]
    assert adapter and all(torch.equal(before[k], after[k]) for k in adapter)  # frozen in stage 2
    assert all(torch.equal(after["generator." + k.split(".", 1)[1]], v) for k, v in ckpt.params.items())
    assert json.loads(read_metadata(bundle)["training"])["stage"] == 2
    model = CLIPInverter.from_bundle(bundle, "cpu", impl="ref")
    emb = model.encode_text(["a face with blonde hair"])
    x = torch.zeros(1, 3, 256, 256)
    full, plain = model.edit(x, emb), model.edit(x, emb, remap_strength=0)
    assert torch.isfinite(full.image).all() and not torch.equal(full.image, plain.image)  # the remapper acts
