"""`evaluate --edited`: an edited clip scored against its source with STIT's temporal identity metrics (TL-ID over
adjacent frames, TG-ID over every pair, edit over source: 1.0 is as steady as the source) and the track's wobble,
written as temporal.csv, temporal.json and temporal.png. The clips: the moving astronaut (12 frames, 192x192) and
edits of it made here, so that what each metric must say is known; ArcFace is the test kit's stand-in."""
import json

import av  # noqa: F401 - PyAV is in requirements.txt: no skip
import pytest

from clipinverter_core.__main__ import main
from conftest import report_figure
from synthetic_clips import moving_astronaut, write_clip

import skimage.data  # noqa: F401,E402 - the astronaut (requirements-dev.txt): no skip
FRAMES, FPS = 12, 10


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    frames = moving_astronaut(FRAMES)
    steady = frames * 0.8                       # the same change in every frame
    flicker = frames.clone()
    flicker[1::2] = flicker[1::2] * 0.55        # a change that comes and goes from frame to frame
    paths = {}
    for name, f in (("source", frames), ("steady", steady), ("flicker", flicker), ("small", frames[:, :, :96, :96])):
        paths[name] = str(folder / f"{name}.mp4")
        write_clip(paths[name], f, FPS)
    return paths


def evaluate(clips, edited, out, *extra):
    assert main(["evaluate", "--input", clips["source"], "--edited", clips[edited], "-o", str(out), "--quiet",
                 *extra]) == 0
    return json.loads((out / "temporal.json").read_text())


def test_the_source_against_itself_is_exactly_as_steady(clips, lossnet_factory, tmp_path, capsys):
    report = evaluate(clips, "source", tmp_path, "--arcface", lossnet_factory(0)["arcface"])
    summary = report["tracks"]["0"]
    assert summary["tl_id"] == pytest.approx(1, abs=1e-6) and summary["tg_id"] == pytest.approx(1, abs=1e-6)
    assert summary["frames"] == FRAMES and 0 < summary["wobble"] < 0.02
    assert sorted(p.name for p in tmp_path.iterdir()) == ["temporal.csv", "temporal.json", "temporal.png"]
    rows = (tmp_path / "temporal.csv").read_text().splitlines()
    assert rows[0] == "track,frame,status,local_source,local_edited,wobble" and len(rows) == 1 + FRAMES
    assert "TL-ID 1.0000, TG-ID 1.0000" in capsys.readouterr().out


def test_a_flickering_edit_scores_below_a_steady_one(clips, lossnet_factory, tmp_path):
    arcface = lossnet_factory(0)["arcface"]
    steady = evaluate(clips, "steady", tmp_path / "steady", "--arcface", arcface)["tracks"]["0"]
    flicker = evaluate(clips, "flicker", tmp_path / "flicker", "--arcface", arcface)["tracks"]["0"]
    report_figure("temporal identity (evaluate --edited, stand-in ArcFace)",
                  f"steady edit TL-ID {steady['tl_id']:.4f} TG-ID {steady['tg_id']:.4f}; flickering edit TL-ID "
                  f"{flicker['tl_id']:.4f} TG-ID {flicker['tg_id']:.4f}")
    assert flicker["tl_id"] < steady["tl_id"] and flicker["tg_id"] < steady["tg_id"]
    assert flicker["tl_id"] < 1 and steady["wobble"] == flicker["wobble"]  # one track: the source's


def test_without_arcface_the_wobble_alone_and_a_mismatch_is_one_line(clips, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CLIPINVERTER_LOSS_FOLDERS", str(tmp_path / "none"))
    import clipinverter_core.lossnets as L
    monkeypatch.setattr(L, "find_loss_file", lambda kind, explicit=None, folders=None: (_ for _ in ()).throw(
        L.CheckpointError("no model_ir_se50.pth in models/clipinverter")))
    report = evaluate(clips, "steady", tmp_path / "r")
    assert "tl_id" not in report["tracks"]["0"] and report["tracks"]["0"]["wobble"] > 0
    assert "no model_ir_se50.pth" in report["skipped"]["tl_id, tg_id"]
    capsys.readouterr()
    assert main(["evaluate", "--input", clips["source"], "--edited", clips["small"], "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "not an edit of it" in err and err.count("\n") == 1
