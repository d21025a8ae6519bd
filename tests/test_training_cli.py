"""`train` and `export` on the command line: one-line errors with exit code 2 for what a user can get wrong."""
from __future__ import annotations

import re

from clipinverter_core.__main__ import main
from clipinverter_core.training import checkpoint


def _fails(capsys, argv, pattern):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert re.search(pattern, err), err


def test_train_without_its_required_flags_says_which(capsys, tmp_path):
    _fails(capsys, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "r")], "train needs --stage")


def test_resume_of_a_folder_without_a_run(capsys, tmp_path):
    _fails(capsys, ["train", "--resume", str(tmp_path)], r"no training checkpoint at .*checkpoint\.safetensors")
    _fails(capsys, ["export", str(tmp_path)], r"no training checkpoint at")


def test_a_resumed_run_keeps_its_settings(capsys, tmp_path):
    import torch

    p = torch.nn.Parameter(torch.zeros(2))
    checkpoint.save(checkpoint.checkpoint_path(str(tmp_path)), 3, {"stage": 1}, {"adapter.x": p},
                    torch.optim.Adam([p]).state_dict(), {})
    _fails(capsys, ["train", "--resume", str(tmp_path), "--lr", "0.1"], "--lr: a resumed run keeps its own settings")


def test_a_file_that_is_not_a_checkpoint_is_refused(capsys, tmp_path):
    import torch
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "checkpoint.safetensors"), metadata={"format": "other"})
    _fails(capsys, ["export", str(tmp_path)], "not a CLIPInverter training checkpoint")
    (tmp_path / "checkpoint.safetensors").write_bytes(b"truncated")
    _fails(capsys, ["export", str(tmp_path)], "not a readable safetensors file")
