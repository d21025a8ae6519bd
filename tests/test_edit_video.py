"""`edit-video`: a short clip the test makes (the moving astronaut, 6 frames at 192x192, 10 fps, with a sine
tone as its audio) edited end to end with the stand-in bundle: H.264 out, the frame rate, size, frame count and
audio kept, the frames outside the face unchanged up to the codec, a progress bar in frames/s, and Ctrl-C or an
error leaves no file behind."""
import fractions
import os

import av  # PyAV: in requirements.txt (ComfyUI installs it too)
import numpy as np
import pytest
import torch

from clipinverter_core import align as A
from clipinverter_core.__main__ import main
from synthetic_clips import SCALE, SIDE, path_matrix, render

skimage_data = pytest.importorskip("skimage.data")
FRAMES, FPS, SAMPLE_RATE = 6, 10, 16000


def write_clip(path: str, frames: torch.Tensor) -> None:
    """H.264 video + a 440 Hz AAC tone of the same length."""
    with av.open(path, "w") as out:
        v = out.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = SIDE, SIDE, "yuv420p"
        v.options = {"crf": "10"}
        a = out.add_stream("aac", rate=SAMPLE_RATE)
        for t, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray((f.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), "rgb24")
            frame.pts = t
            out.mux(v.encode(frame))
        out.mux(v.encode())
        n = SAMPLE_RATE * FRAMES // FPS
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / SAMPLE_RATE)).astype(np.float32)[None]
        for k in range(0, n, 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, k:k + 1024]), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = SAMPLE_RATE, k
            out.mux(a.encode(chunk))
        out.mux(a.encode())


def read(path: str):
    with av.open(path) as c:
        v = c.streams.video[0]
        info = {"codec": v.codec_context.name, "rate": v.average_rate, "size": (v.width, v.height),
                "audio": [s.codec_context.name for s in c.streams.audio]}
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(path) as c:
        info["audio_s"] = sum(f.samples for f in c.decode(audio=0)) / SAMPLE_RATE if info["audio"] else 0
    return info, np.stack(frames)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    astronaut = skimage_data.astronaut()
    centre = A.ffhq_quad(A.detect_faces(astronaut)[0].landmarks).mean(0)
    frames = render(A.to_unit_tensor(astronaut), [path_matrix(t, 60, centre, SIDE, SCALE) for t in range(FRAMES)],
                    SIDE).clamp(0, 1)
    path = str(tmp_path_factory.mktemp("clip") / "in.mp4")
    write_clip(path, frames)
    return path


def test_edit_video_keeps_rate_size_frames_and_audio(clip, standin256, tmp_path, capsys):
    out = str(tmp_path / "out.mp4")
    assert main(["edit-video", "--model", standin256, "--input", clip, "-o", out, "--text", "a smile",
                 "--device", "cpu", "--batch", "4"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["out.mp4"]
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
