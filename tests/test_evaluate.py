"""`python -m clipinverter_core evaluate` on stand-ins: every file it promises, one row per image x prompt x
strength plus the means, the skipped scores said, and errors in one line with nothing written."""
from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from metrics_standins import standin_inception

PROMPTS = ["this person has blonde hair"]  # one prompt keeps CI under a minute; the sheet test below has more
STRENGTHS = "0.5,1.5"


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Two aligned 256x256 crops: the astronaut and an LFW face (both in skimage)."""
    from skimage import data

    d = tmp_path_factory.mktemp("faces")
    Image.fromarray(data.astronaut()).crop((125, 20, 325, 220)).resize((256, 256), Image.LANCZOS).save(d / "a.png")
    lfw = (data.lfw_subset()[0] * 255).astype(np.uint8)
    Image.fromarray(lfw).convert("RGB").resize((256, 256), Image.BICUBIC).save(d / "b.png")
    return d


@pytest.fixture(scope="module")
def report(faces, standin256, lossnet_factory, tmp_path_factory):
    from clipinverter_core.__main__ import main

    files = lossnet_factory()
    out = tmp_path_factory.mktemp("report")
    argv = ["evaluate", "--model", standin256, "--images", str(faces), "-o", str(out), "--no-align",
            "--strength", STRENGTHS, "--arcface", files["arcface"], "--alexnet", files["alexnet"],
            "--inception", standin_inception(tmp_path_factory), "--device", "cpu", "--quiet"]
    for p in PROMPTS:
        argv += ["--text", p]
    assert main(argv) == 0
    return out


def test_evaluate_writes_a_row_per_image_prompt_and_strength_then_the_means(report):
    rows = list(csv.DictReader(open(report / "metrics.csv")))
    assert list(rows[0]) == ["image", "prompt", "strength", "clip_score", "directional", "identity", "lpips",
                             "fid", "kid", "kid_std"]
    images = [r for r in rows if not r["image"].startswith("(")]
    assert sorted((r["image"], r["prompt"], float(r["strength"])) for r in images) == sorted(
        (i, p, s) for i in ("a.png", "b.png") for p in PROMPTS for s in (0.5, 1.5))
    means = [r for r in rows if r["image"] == "(mean)"]
    assert len(means) == 2 and all(r["fid"] and r["kid"] for r in means)  # FID/KID: one per prompt and strength
    for m in means:
        group = [float(r["clip_score"]) for r in images if (r["prompt"], r["strength"]) == (m["prompt"], m["strength"])]
        assert float(m["clip_score"]) == pytest.approx(np.mean(group))
    assert [r["image"] for r in rows].count("(all)") == 1
    for r in images:
        assert -1 <= float(r["clip_score"]) <= 1 and -1 <= float(r["identity"]) <= 1 and float(r["lpips"]) >= 0


def test_evaluate_json_holds_the_same_rows_and_what_it_was_run_on(report):
    data = json.load(open(report / "metrics.json"))
    rows = list(csv.DictReader(open(report / "metrics.csv")))
    assert len(data["rows"]) + len(data["means"]) == len(rows)
    assert data["skipped"] == {} and data["meta"]["standin"] is True
    assert data["meta"]["prompts"] == PROMPTS and data["meta"]["strengths"] == [0.5, 1.5]
    first = next(r for r in rows if r["image"] == data["rows"][0]["image"])
    assert float(first["clip_score"]) == pytest.approx(data["rows"][0]["clip_score"])


def test_evaluate_draws_the_sheet_and_the_strength_plot(report):
    from clipinverter_core.metrics.pictures import PAD, TILE

    sheet = Image.open(report / "sheet.png")
    assert sheet.width == PAD + (1 + len(PROMPTS) * 2) * (TILE + PAD)  # input + prompts x strengths
    assert sheet.height > 2 * TILE
    plot = Image.open(report / "strength.png")
    assert plot.format == "PNG" and plot.width > plot.height
    assert not [f for f in os.listdir(report) if f.endswith(".part")]


def test_the_sheet_puts_inputs_by_prompts_by_strengths():
    from clipinverter_core.metrics.pictures import LINE, PAD, TILE, contact_sheet

    colours = np.arange(2 * 2 * 3 + 2).reshape(-1, 1, 1, 1) * 17 * np.ones((1, 64, 64, 3))
    tiles = [c.astype(np.uint8) for c in colours]
    edits = {(p, s): tiles[2 + 2 * (3 * p + j): 4 + 2 * (3 * p + j)] for p in range(2) for j, s in enumerate((0, 1, 2))}
    sheet = np.asarray(contact_sheet(tiles[:2], ["a", "b"], edits, ["p", "q"], [0, 1, 2], {}, "title"))
    assert sheet.shape[1] == PAD + 7 * (TILE + PAD)
    cell = TILE + LINE + PAD  # a picture and its caption
    top = sheet.shape[0] - 2 * cell  # below the header
    for p in range(2):
        for j in range(3):
            for i in range(2):
                x = PAD + (1 + 3 * p + j) * (TILE + PAD) + TILE // 2
                y = top + i * cell + TILE // 2
                assert tuple(sheet[y, x]) == (edits[(p, (0, 1, 2)[j])][i][0, 0, 0],) * 3, (p, j, i)


def test_missing_networks_are_skipped_and_said(standin256, faces, tmp_path):
    from clipinverter_core.photo import faces_of_photos as load_faces
    from clipinverter_core.metrics.report import measure, write_report
    from clipinverter_core.pipeline import CLIPInverter

    model = CLIPInverter.from_bundle(standin256, "cpu")
    names, x, _ = load_faces([str(faces / "a.png")], "cpu", aligned=True)
    m = measure(model, names, x, PROMPTS, [1.0], folders=[str(tmp_path)], progress=False)
    assert m.columns == ["clip_score", "directional"]
    assert set(m.skipped) == {"identity", "lpips", "fid"} and "model_ir_se50.pth" in m.skipped["identity"]
    write_report(m, str(tmp_path / "r"))
    header = open(tmp_path / "r" / "metrics.csv").readline().strip()
    assert header == "image,prompt,strength,clip_score,directional"
    assert "pt_inception" in json.load(open(tmp_path / "r" / "metrics.json"))["skipped"]["fid"]


def test_evaluate_errors_are_one_line_and_write_nothing(standin256, tmp_path):
    import subprocess
    import sys

    from comfy_stubs import ROOT

    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "clipinverter_core", "evaluate", "--model", standin256, "--images",
                        str(empty), "--text", "x", "-o", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith("error: no images")
    assert not out.exists()
    p = subprocess.run([sys.executable, "-m", "clipinverter_core", "evaluate", "--model", standin256, "--images",
                        str(empty), "--text", "x", "-o", str(out), "--strength", "1,strong"], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 2 and "expected comma-separated numbers" in p.stderr
