"""Clip Metrics (two VIDEOs -> TL-ID, TG-ID, wobble, a plot), without ComfyUI (comfy_stubs.py): the numbers are
`evaluate --edited`'s for the same clips; the source against itself is 1.0; without ArcFace the wobble alone."""
from __future__ import annotations

import json
import os

import av  # noqa: F401 - PyAV is in requirements.txt: no skip
import pytest

from clipinverter_core.__main__ import main
from comfy_stubs import RECORD, VideoFromFile
from synthetic_clips import moving_astronaut, write_clip
from test_nodes import _fresh_record, comfy, nodes  # noqa: F401 - fixtures

import skimage.data  # noqa: F401,E402 - the astronaut (requirements-dev.txt): no skip
FRAMES, FPS = 8, 10


@pytest.fixture(scope="module")
def clips(tmp_path_factory, comfy, lossnet_factory):  # noqa: F811
    folder = tmp_path_factory.mktemp("clips")
    frames = moving_astronaut(FRAMES)
    flicker = frames.clone()
    flicker[1::2] = flicker[1::2] * 0.55
    paths = {}
    for name, f in (("source", frames), ("flicker", flicker)):
        paths[name] = str(folder / f"{name}.mp4")
        write_clip(paths[name], f, FPS)
    models = comfy[2] / "models" / "clipinverter"
    models.mkdir(parents=True, exist_ok=True)
    paths["arcface"] = lossnet_factory(0)["arcface"]
    if not (models / "model_ir_se50.pth").exists():
        os.symlink(paths["arcface"], models / "model_ir_se50.pth")
    return paths


def metrics(nodes, clips, edited, arcface="model_ir_se50.pth"):  # noqa: F811
    RECORD.reset()
    return nodes["CLIPInverterClipMetrics"].execute(VideoFromFile(clips["source"]), VideoFromFile(clips[edited]),
                                                    arcface, 0, "largest first", "auto", 3.0).args


def test_clip_metrics_are_evaluates(nodes, clips, tmp_path):  # noqa: F811
    table, tl, tg, wobble, plot = metrics(nodes, clips, "flicker")
    assert main(["evaluate", "--input", clips["source"], "--edited", clips["flicker"], "-o", str(tmp_path),
                 "--arcface", clips["arcface"], "--quiet"]) == 0
    cli = json.loads((tmp_path / "temporal.json").read_text())["tracks"]["0"]
    assert tl == pytest.approx(cli["tl_id"], abs=1e-6) and tg == pytest.approx(cli["tg_id"], abs=1e-6)
    assert wobble == pytest.approx(cli["wobble"], abs=1e-9) and tl < 1
    assert plot.shape[0] == 1 and plot.shape[-1] == 3 and plot.shape[1] > 100
    assert "TL-ID" in table.splitlines()[0] and len(table.splitlines()) == 2
    assert RECORD.progress[-1].current == RECORD.progress[-1].total == 2 * FRAMES
    assert RECORD.checks >= 2 * FRAMES  # cancel: every frame of both passes


def test_the_source_against_itself_and_no_arcface(nodes, clips):  # noqa: F811
    _, tl, tg, _, _ = metrics(nodes, clips, "source")
    assert tl == pytest.approx(1, abs=1e-6) and tg == pytest.approx(1, abs=1e-6)
    table, tl, tg, wobble, _ = metrics(nodes, clips, "flicker", "none")
    assert tl != tl and tg != tg and wobble > 0  # NaN: skipped, saying so
    assert "skipped (no ArcFace file chosen)" in table
