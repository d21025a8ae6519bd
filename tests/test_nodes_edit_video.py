"""Edit Video (VIDEO -> VIDEO, streamed), without ComfyUI (comfy_stubs.py): the frames it writes are the ones
`edit-video` writes for the same clip, text and settings; its output is a file-backed VIDEO in ComfyUI's temp
folder with the input's rate, size and audio; the progress bar counts frames (a scan and an edit pass); cancel
stops within a chunk and leaves no file; a VIDEO backed by bytes works as one backed by a path."""
from __future__ import annotations

import io
import os

import av  # noqa: F401 - PyAV is in requirements.txt: no skip
import numpy as np
import pytest
import torch

from clipinverter_core.__main__ import main
from conftest import report_figure
from comfy_stubs import RECORD, InterruptProcessingException, VideoFromFile
from synthetic_clips import read_clip
from test_nodes import _fresh_record, comfy, model, nodes, run  # noqa: F401 - fixtures

import skimage.data  # noqa: F401,E402 - the astronaut (requirements-dev.txt): no skip
FRAMES, FPS, TEXT = 6, 10, "this person has blonde hair"


@pytest.fixture(scope="module")
def clip(astronaut_clip):
    return astronaut_clip  # conftest.py: FRAMES frames at FPS


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(float) - b) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255 ** 2 / mse))  # inf: the same pixels


def edit(nodes, model, video, t=None, **kw):  # noqa: F811
    t = run(nodes, "CLIPInverterEncodeText", model, TEXT) if t is None else t
    args = dict(strength=1.0, remap_strength=1.0, face_index=0, face_order="largest first", smoothing_mode="auto",
                smoothing=3.0, feather=0.1, color_match=1.0, frames_per_chunk=4)
    args.update(kw)
    RECORD.reset()
    return nodes["CLIPInverterEditVideo"].execute(model, video, t, **args).args[0]


def test_edit_video_writes_what_the_cli_writes(comfy, nodes, model, clip, tmp_path):  # noqa: F811
    out = edit(nodes, model, VideoFromFile(clip))
    path = out.get_stream_source()
    assert os.path.dirname(path) == os.path.join(comfy[2], "temp", "clipinverter") and path.endswith(".mp4")
    assert [(p.current, p.total) for p in RECORD.progress][-1] == (2 * FRAMES, 2 * FRAMES)  # frames, both passes
    assert RECORD.checks == FRAMES + 2  # cancel: before every frame of the scan and every chunk of the edit
    cli = str(tmp_path / "cli.mp4")
    bundle = str(comfy[2] / "models" / "clipinverter" / "clipinverter_faces.safetensors")
    assert main(["edit-video", "--model", bundle, "--input", clip, "-o", cli, "--text", TEXT, "--device", "cpu",
                 "--precision", "fp32", "--batch", "4", "--quiet"]) == 0
    (info, ours), (_, theirs) = read_clip(path), read_clip(cli)
    src, before = read_clip(clip)
    assert info["rate"] == FPS and info["size"] == src["size"] and info["audio"] == ["aac"]
    assert abs(info["audio_s"] - src["audio_s"]) < 0.05 and ours.shape == before.shape
    same, edited = psnr(ours, theirs), psnr(ours, before)
    report_figure("Edit Video node against edit-video", f"PSNR node vs CLI {same:.1f} dB (the same edit: pixels within "
                  f"1 level before H.264); node vs the source {edited:.1f} dB (the edit)")
    assert same > 40 and edited < 30, (same, edited)


def test_cancel_stops_within_a_chunk_and_leaves_no_file(comfy, nodes, model, clip):  # noqa: F811
    folder = os.path.join(comfy[2], "temp", "clipinverter")
    before = set(os.listdir(folder)) if os.path.isdir(folder) else set()
    t = run(nodes, "CLIPInverterEncodeText", model, TEXT)
    original = RECORD.reset

    def reset_then_arm():
        original()
        RECORD.interrupt_after_checks = FRAMES + 1  # the scan's checks, the first chunk's; the second raises
    RECORD.reset = reset_then_arm
    try:
        with pytest.raises(InterruptProcessingException):
            edit(nodes, model, VideoFromFile(clip), t, frames_per_chunk=2)
    finally:
        RECORD.reset = original
    assert RECORD.progress[-1].current == FRAMES + 2  # the scan, and the first chunk's two frames written
    assert set(os.listdir(folder)) == before  # no partial file


def test_a_video_in_memory_works_and_two_embeddings_are_refused(nodes, model, clip):  # noqa: F811
    with open(clip, "rb") as f:
        out = edit(nodes, model, VideoFromFile(io.BytesIO(f.read())))
    assert read_clip(out.get_stream_source())[1].shape[0] == FRAMES
    t = run(nodes, "CLIPInverterEncodeText", model, TEXT)
    with pytest.raises(Exception, match="one embedding, not 2"):
        edit(nodes, model, VideoFromFile(clip), torch.cat([t, t]))
