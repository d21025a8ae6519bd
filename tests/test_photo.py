"""The photo flow (photo.py): one path from a photo to pixels for every caller. The CLI's edit writes what
find_faces -> edit_photos -> pixels computes; edit-video streams its chunks through edit_frames and edit_photos;
evaluate finds its faces through find_faces; the backbone runs once for one face edited N ways; and the one
quantiser truncates, as ComfyUI's Save Image does."""
import numpy as np
import pytest
import torch
from PIL import Image

import skimage.data  # noqa: F401 - the astronaut (requirements-dev.txt): no skip

from clipinverter_core import photo
from clipinverter_core.__main__ import main
from clipinverter_core.images import unit_to_uint8
from clipinverter_core.pipeline import CLIPInverter
from synthetic_clips import moving_astronaut, write_clip


@pytest.fixture(scope="module")
def model(standin256):
    return CLIPInverter.from_bundle(standin256, "cpu")


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(path)
    return path


def spy(monkeypatch, owner, name, calls, record):
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls.append(record(*args, **kwargs))
        return real(*args, **kwargs)
    monkeypatch.setattr(owner, name, wrapper)


def test_the_cli_edit_writes_what_the_photo_flow_computes_with_one_backbone_pass(
        model, standin256, astronaut, tmp_path, monkeypatch):
    prompts = ["a smile", "red hair", "a beard"]
    passes = []
    spy(monkeypatch, CLIPInverter, "features", passes, lambda self, x: x.shape[0])
    out = tmp_path / "out.png"
    assert main(["edit", "--model", standin256, "--image", str(astronaut), "-o", str(out), "--device", "cpu",
                 "--paste-back", *sum((["--text", p] for p in prompts), [])]) == 0
    assert passes == [1]  # one face, three prompts: one backbone pass of one image

    faces = photo.find_faces(Image.open(astronaut).convert("RGB"), "cpu")
    _, pictures = photo.edit_photos(model, faces, model.encode_text(prompts), paste=photo.Paste())
    expected = photo.pixels(pictures)
    assert expected.shape == (3, 512, 512, 3)  # the whole photo, pasted back, once per prompt
    for k in range(3):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / f"out_{k}.png")), expected[k])


def test_edit_video_streams_its_chunks_through_the_photo_flow(standin256, tmp_path, monkeypatch):
    clip = str(tmp_path / "in.mp4")
    write_clip(clip, moving_astronaut(3), 10)
    chunks = []
    spy(monkeypatch, photo, "edit_photos", chunks, lambda model, faces, *a, **k: (len(faces.x), faces.photo.shape[0]))
    assert main(["edit-video", "--model", standin256, "--input", clip, "-o", str(tmp_path / "out.mp4"),
                 "--text", "a smile", "--device", "cpu", "--batch", "2", "--quiet"]) == 0
    assert chunks == [(2, 2), (1, 1)]  # faces, frames: at most one chunk of 2 alive


def test_edit_frames_gives_the_same_frames_however_the_clip_is_chunked(model):
    """Up to the last bit of float32 (convolutions pick their algorithm by batch size)."""
    from clipinverter_core.align.video import plan_clip, scan_frames

    frames = moving_astronaut(3)
    detections, cuts = scan_frames(list(frames))
    plan = plan_clip(detections, cuts)
    t = model.encode_text(["a smile"])
    whole = np.stack(list(photo.edit_frames(model, iter(frames), plan, t, batch=3)))
    longer = torch.cat([frames, frames[:2]])  # frames the plan has not seen are not edited
    pairs = np.stack(list(photo.edit_frames(model, iter(longer), plan, t, batch=2)))
    assert whole.shape == pairs.shape == (3, *frames.shape[2:], 3) and whole.dtype == np.uint8
    diff = np.abs(pairs.astype(int) - whole)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # float rounding of other batch sizes, one level at most


def test_evaluate_finds_its_faces_through_the_photo_flow(astronaut, tmp_path, monkeypatch):
    """faces_of_photos, which `evaluate` reads its folder with: each photo through find_faces; a photo without a
    face is left out with one warning."""
    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 300), (128, 128, 128)).save(blank)
    calls, warnings = [], []
    spy(monkeypatch, photo, "find_faces", calls, lambda img, device, *a, **k: img.size)
    kept, x, targets = photo.faces_of_photos([str(astronaut), str(blank)], "cpu", warn=warnings.append)
    assert calls == [(512, 512), (300, 300)]
    assert kept == [str(astronaut)] and x.shape == (1, 3, 256, 256) and targets is None
    assert len(warnings) == 1 and "blank.png" in warnings[0]
    assert -1 <= x.min() and x.max() <= 1
    with pytest.raises(Exception, match="no face found in any image"):
        photo.faces_of_photos([str(blank)], "cpu", warn=warnings.append)


def test_the_one_quantiser_truncates_and_gives_back_8_bit_pixels():
    k = torch.arange(256, dtype=torch.float32)
    assert unit_to_uint8(k / 255).tolist() == list(range(256))  # pixels that came from uint8 come back as they were
    x = torch.tensor([-0.1, 0.5 / 255, 1.9 / 255, 0.5, 1.0, 1.5])
    assert unit_to_uint8(x).tolist() == [0, 0, 1, 127, 255, 255]  # truncating: 127.5 -> 127, as Save Image
    np.testing.assert_array_equal(unit_to_uint8(x.numpy()), unit_to_uint8(x).numpy())
    pictures = torch.rand(2, 3, 5, 7)
    out = photo.pixels(pictures)
    assert out.shape == (2, 5, 7, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.clip(255.0 * pictures.permute(0, 2, 3, 1).numpy(), 0, 255).astype(np.uint8))
