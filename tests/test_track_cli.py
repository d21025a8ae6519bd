"""`track`: a clip's face track as JSON, without editing (the format: align/trackfile.py, docs/video.md). The
clip: the moving astronaut, 6 frames at 192x192, 10 fps; the track is checked against align_clip's own crops."""
import json

import av  # noqa: F401 - PyAV is in requirements.txt: no skip in CI
import numpy as np
import pytest
import torch

from clipinverter_core.__main__ import main
from clipinverter_core.align import video as V
from clipinverter_core.align.geometry import crop_corners
from synthetic_clips import SIDE, moving_astronaut, read_clip, write_clip

import skimage.data  # noqa: F401,E402 - the astronaut (requirements-dev.txt): no skip
FRAMES, FPS = 6, 10


@pytest.fixture(scope="module")
def clip(astronaut_clip):
    return astronaut_clip  # conftest.py: FRAMES frames at FPS


def test_the_track_is_the_crops_align_clip_cuts(clip, tmp_path, capsys):
    out = tmp_path / "t.json"
    assert main(["track", "--input", clip, "-o", str(out), "--crop-size", "256"]) == 0
    assert f"wrote {out} ({FRAMES} frames, a face in {FRAMES})" in capsys.readouterr().out
    track = json.loads(out.read_text())
    assert {k: track[k] for k in ("fps", "size", "crop_size", "smoothing")} == {
        "fps": FPS, "size": [SIDE, SIDE], "crop_size": 256, "smoothing": "auto"}
    frames = torch.from_numpy(read_clip(clip)[1]).permute(0, 3, 1, 2).float() / 255
    _, alignment = V.align_clip(frames, 256)  # the same decoded frames, aligned in memory
    assert len(track["frames"]) == FRAMES
    for entry, face in zip(track["frames"], alignment.faces):
        (got,) = entry["faces"]
        assert got["track"] == 0 and got["status"] == "detected"
        np.testing.assert_allclose(got["matrix"], face.matrix, atol=1e-5)
        np.testing.assert_allclose(got["quad"], face.quad, atol=1e-3)  # the crop's corners, in the frame's pixels
        np.testing.assert_allclose(got["quad"], crop_corners(np.array(got["matrix"]), 256), atol=1e-3)


def test_a_gap_is_interpolated_and_a_lost_face_held(tmp_path):
    frames = moving_astronaut(12)
    card = (slice(None), slice(45, 150), slice(45, 150))  # a grey card over the face (not a cut: a quarter of it)
    for t in (5, 6, 11):  # the face gone for two frames, then back; and gone at the end: held
        frames[t][card] = 0.5
    path = str(tmp_path / "gap.mp4")
    write_clip(path, frames, FPS)
    out = tmp_path / "t.json"
    assert main(["track", "--input", path, "-o", str(out), "--quiet", "--smoothing", "0", "--hold", "2"]) == 0
    statuses = [[f["status"] for f in e["faces"]] for e in json.loads(out.read_text())["frames"]]
    assert statuses[5:7] == [["interpolated"]] * 2 and statuses[11] == ["held"]
    assert statuses[4] == statuses[7] == ["detected"]


def test_bad_smoothing_is_one_line(clip, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:  # argparse's own exit, with its usage block
        main(["track", "--input", clip, "-o", str(tmp_path / "t.json"), "--smoothing", "-1"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert "expected auto or a sigma of 0 frames or more" in err
    assert not (tmp_path / "t.json").exists()
