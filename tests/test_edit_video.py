"""`edit-video`: a short clip the test makes (the moving astronaut, 6 frames at 192x192, 10 fps, with a sine
tone as its audio) edited end to end with the stand-in bundle: H.264 out, the frame rate, size, frame count and
audio kept, the frames outside the face unchanged up to the codec, a progress bar in frames/s, and Ctrl-C or an
error leaves no file behind."""
import fractions
import json
import os

import av  # noqa: F401 - PyAV is in requirements.txt (ComfyUI installs it too): no skip in CI
import numpy as np
import pytest

from clipinverter_core.__main__ import main
from synthetic_clips import SIDE, read_clip as read

import skimage.data  # noqa: F401,E402 - the astronaut (requirements-dev.txt): no skip
FRAMES, FPS = 6, 10


@pytest.fixture(scope="module")
def clip(astronaut_clip):
    return astronaut_clip  # conftest.py: FRAMES frames at FPS


def test_edit_video_keeps_rate_size_frames_and_audio(clip, standin256, tmp_path, capsys):
    out = str(tmp_path / "out.mp4")
    assert main(["edit-video", "--model", standin256, "--input", clip, "-o", out, "--text", "a smile",
                 "--device", "cpu", "--batch", "4", "--track-out", str(tmp_path / "used.json")]) == 0
    assert sorted(os.listdir(tmp_path)) == ["out.mp4", "used.json"]
    assert main(["track", "--input", clip, "-o", str(tmp_path / "track.json"), "--quiet"]) == 0
    used, track = (json.loads((tmp_path / f).read_text()) for f in ("used.json", "track.json"))
    assert used == track and len(track["frames"]) == FRAMES  # the track the edit used is the `track` command's
    src, before = read(clip)
    info, after = read(out)
    assert info["codec"] == "h264" and info["rate"] == fractions.Fraction(FPS) and info["size"] == (SIDE, SIDE)
    assert after.shape == before.shape  # every frame, in order
    assert info["audio"] == ["aac"] and abs(info["audio_s"] - src["audio_s"]) < 0.05
    corner = np.abs(after[:, :12, :12].astype(float) - before[:, :12, :12]).mean()  # outside the face: unchanged
    face = np.abs(after[:, 80:110, 80:110].astype(float) - before[:, 80:110, 80:110]).mean()
    assert corner < 3 and face > 10  # up to the codec; the face is edited (stand-in weights: noise)
    err = capsys.readouterr().err
    assert "frame/s" in err and "edit" in err and "scan" in err  # the progress bars, in frames per second


def test_ctrl_c_leaves_no_file(clip, standin256, tmp_path, monkeypatch, capsys):
    from clipinverter_core import align

    calls = []

    def interrupted(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    real = align.paste_edits
    monkeypatch.setattr(align, "paste_edits", interrupted)
    out = str(tmp_path / "out.mp4")
    assert main(["edit-video", "--model", standin256, "--input", clip, "-o", out, "--text", "a smile",
                 "--device", "cpu", "--batch", "2", "--quiet"]) == 130
    assert os.listdir(tmp_path) == [] and len(calls) == 2  # stopped in the second chunk; nothing left
    assert "interrupted; no output was written" in capsys.readouterr().err


def test_bad_inputs_are_one_line_errors(clip, standin256, tmp_path, capsys):
    (tmp_path / "not_a_video.mp4").write_bytes(b"hello")
    for args, message in [(["--input", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o.mp4")], "no file at"),
                          (["--input", str(tmp_path / "not_a_video.mp4"), "-o", str(tmp_path / "o.mp4")],
                           "not a readable video"),
                          (["--input", clip, "-o", str(tmp_path / "o.gif")], "must end in")]:
        assert main(["edit-video", "--model", standin256, "--text", "x", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert sorted(os.listdir(tmp_path)) == ["not_a_video.mp4"]
