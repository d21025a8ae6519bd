"""bench/gpu_check.sh, the prepared GPU check, on its CPU path (so that it cannot rot before a GPU runs it): the
stand-in bundle, a test on the chosen device, the bench rows, one JSON file and the markdown table. And the
official anchor it times, where a checkout of the official code is at hand (official/, or CLIPINVERTER_OFFICIAL),
gives our float32 edit's pixels."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, rel_l2

OFFICIAL = os.environ.get("CLIPINVERTER_OFFICIAL", os.path.join(ROOT, "official"))
QUICK_TEST = "tests/test_fast.py::test_no_nan_or_inf_at_any_batch_size[1]"
sys.path.insert(0, os.path.join(ROOT, "bench"))


def test_the_gpu_check_runs_on_the_cpu(tmp_path, kit256):
    out = tmp_path / "out"
    cache = os.environ.get("CLIPINVERTER_KIT_CACHE")
    if not cache:  # the script and its test run reuse this session's 256 kit instead of writing another
        cache = tmp_path / "kits"
        cache.mkdir()
        os.symlink(kit256.folder, cache / "kit256")
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out), "CLIPINVERTER_KIT_CACHE": str(cache)}
    cmd = ["bash", os.path.join(ROOT, "bench", "gpu_check.sh"), "--device", "cpu", "--size", "256", "--batch", "1",
           "--precision", "fp32", "--compile", "none", "--repeats", "1", "--warmup", "1", "--tests", QUICK_TEST,
           "--test-timeout", "900", "--tuning-steps", "1", "--tuning-warmup", "0", "--tuning-full", "0",
           "--official", str(tmp_path / "no_official"), "--work", str(tmp_path / "work")]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["bench.log", "gpu_check.json", "gpu_check.md", "tests.log", "tuning.log"]
    tuning = (out / "tuning.log").read_text()
    assert "| ours |" in tuning and "| ours, official form |" in tuning
    assert "peak memory of a photo tuning" in tuning and "did not run" not in tuning
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["machine"]["device"] == "cpu" and report["machine"]["gpu"] is None
    assert report["tests"]["passed"] == 1 and report["tests"]["failed"] == 0
    rows = {(row["path"], row["precision"], row["compile"], row["batch"]): row for row in report["rows"]}
    assert set(rows) == {("fast", "fp32", "eager", 1), ("ref", "fp32", "eager", 1)}
    for row in rows.values():
        assert row["finite"] and row["s_per_call"] > 0 and row["peak_with_weights_mib"] > 0
    assert rows["fast", "fp32", "eager", 1]["rel_l2_image_vs_fast_fp32"] == 0
    assert rows["ref", "fp32", "eager", 1]["rel_l2_image_vs_fast_fp32"] < 1e-5  # the two paths agree
    assert any(s.startswith("official: no checkout") for s in report["skipped"])
    table = (out / "gpu_check.md").read_text()
    assert "| path | precision | compile | batch |" in table and table.strip() in r.stdout


@pytest.mark.skipif(not os.path.isfile(os.path.join(OFFICIAL, "models", "e4e_features.py")),
                    reason=f"no checkout of the official code at {OFFICIAL} (bench/gpu_prepare.sh writes one)")
def test_the_official_anchor_edits_as_our_fp32_path(kit256):
    from official_anchor import OfficialEdit

    from clipinverter_core.pipeline import CLIPInverter
    from test_fast import _inputs

    x, t = _inputs(kit256.golden, 2)
    w, w_hat, image = OfficialEdit(OFFICIAL, kit256.folder, torch.device("cpu"))(x, t)
    ours = CLIPInverter.from_bundle(kit256.bundle, "cpu", sections=("encoder", "adapter", "generator")).edit(x, t)
    assert rel_l2(ours.w_hat - ours.w, w_hat - w) < 1e-4
    assert rel_l2(ours.image, image) < 1e-4
