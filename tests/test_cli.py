"""The CLI edit is the same computation as the API: --save-raw of a parity-kit edit matches the golden arrays. What
goes around the computation (file names, missing files, the bench's report) is checked on the stand-in bundle."""
import os

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file

from conftest import rel_l2
from test_convert import _cli


@pytest.fixture(scope="module")
def edited(kit256, tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    g = kit256.golden
    Image.fromarray(g["input_uint8"][0]).save(d / "face.png")
    p = _cli("edit", "--model", kit256.bundle, "--image", d / "face.png", "--text", str(g["captions"][0]),
             "-o", d / "edited.png", "--no-align", "--device", "cpu", "--save-raw", d / "raw.safetensors")
    assert p.returncode == 0, p.stderr
    return d, g, p


def test_cli_edit_matches_the_official_outputs(edited):
    d, g, _ = edited
    raw = load_file(str(d / "raw.safetensors"))
    assert raw["text_embedding"].shape == (1, 512) and raw["image"].dtype == np.float32
    assert rel_l2(raw["text_embedding"], g["text_features"][:1]) < 1e-4
    assert rel_l2(raw["w"], g["w"][:1]) < 1e-4
    assert rel_l2(raw["w_hat"] - raw["w"], g["w_hat"][:1] - g["w"][:1]) < 1e-4
    assert rel_l2(raw["image"], g["image"][:1]) < 1e-4


def test_cli_png_is_the_raw_image_in_8_bits(edited):
    """The PNG holds the raw image as the official code shows it ([-1, 1] -> [0, 1], clamped, x 255 truncated),
    converted here by torchvision's to_pil_image, not by our code."""
    from torchvision.transforms.functional import to_pil_image

    d, _, p = edited
    raw = torch.from_numpy(load_file(str(d / "raw.safetensors"))["image"][0])
    expected = np.asarray(to_pil_image(((raw + 1) / 2).clamp(0, 1)))
    png = np.asarray(Image.open(d / "edited.png"))
    assert png.shape == (256, 256, 3)
    np.testing.assert_array_equal(png, expected)
    assert "wrote" in p.stdout


def test_cli_several_prompts_write_numbered_files(kit256, standin256, tmp_path):
    Image.fromarray(kit256.golden["input_uint8"][1]).resize((300, 300)).save(tmp_path / "face.jpg")
    p = _cli("edit", "--model", standin256, "--image", tmp_path / "face.jpg", "--text", "a smile",
             "--text", "red hair", "-o", tmp_path / "out.png", "--no-align", "--strength", "0.5")
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(tmp_path)) == ["face.jpg", "out_0.png", "out_1.png"]


def test_cli_without_alignment_says_what_to_do(standin256, tmp_path):
    Image.new("RGB", (256, 256)).save(tmp_path / "face.png")
    p = _cli("edit", "--model", standin256, "--image", tmp_path / "face.png", "--text", "x", "-o",
             tmp_path / "o.png")
    assert p.returncode == 2 and "--no-align" in p.stderr
    assert not (tmp_path / "o.png").exists()


def test_cli_missing_files_and_bad_images(standin256, tmp_path):
    Image.new("RGB", (256, 256)).save(tmp_path / "x.png")
    p = _cli("edit", "--model", tmp_path / "nope.safetensors", "--image", tmp_path / "x.png", "--text", "x",
             "-o", tmp_path / "o.png", "--no-align")
    assert p.returncode == 2 and "nope.safetensors" in p.stderr and p.stderr.count("\n") == 1
    (tmp_path / "x.png").write_bytes(b"not an image")
    p = _cli("edit", "--model", standin256, "--image", tmp_path / "x.png", "--text", "x",
             "-o", tmp_path / "o.png", "--no-align")
    assert p.returncode == 2 and "not a readable image" in p.stderr
    assert not (tmp_path / "o.png").exists()


def test_cli_if_no_face_passthrough_edits_the_whole_photo(standin256, tmp_path):
    from skimage import data

    Image.fromarray(data.coffee()).save(tmp_path / "cup.png")  # 600x400, no face: without the flag, an error
    p = _cli("edit", "--model", standin256, "--image", tmp_path / "cup.png", "--text", "a smile",
             "--if-no-face", "passthrough", "--device", "cpu", "-o", tmp_path / "out.png", "--paste-back")
    assert p.returncode == 0, p.stderr
    out = np.asarray(Image.open(tmp_path / "out.png")).astype(np.int16)
    assert out.shape == (400, 600, 3)  # the photo's size
    # edited whole: the "face" is the whole photo, so every quarter of it is the edit's (a paste that drops the
    # edit, or keeps part of the photo, leaves a quarter within a few levels of the input)
    diff = np.abs(out - data.coffee().astype(np.int16))
    quarters = [diff[r:r + 200, c:c + 300].mean() for r in (0, 200) for c in (0, 300)]
    assert min(quarters) > 10, quarters


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a size (PIL reads it before any pixel): a decompression bomb for PIL."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, body: (struct.pack(">I", len(body)) + kind + body  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + body)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("case", ["decompression bomb", "output under a file", "disk full while saving raw"])
def test_cli_errors_a_user_can_cause_are_one_line_with_exit_2(kit256, tmp_path, case, monkeypatch, capsys):
    """Beyond the project's own errors: what the OS (OSError), PIL and safetensors raise at a user's files."""
    import safetensors.torch
    from safetensors import SafetensorError

    from clipinverter_core.__main__ import main

    Image.fromarray(kit256.golden["input_uint8"][0]).save(tmp_path / "face.png")
    image, out, extra = tmp_path / "face.png", tmp_path / "o.png", []
    if case == "decompression bomb":
        image = tmp_path / "huge.png"
        image.write_bytes(_png_claiming(20000, 20000))
    elif case == "output under a file":
        out = tmp_path / "face.png" / "o.png"
    else:
        def full_disk(*args, **kwargs):
            raise SafetensorError("Error while serializing: IoError(No space left on device (os error 28))")
        monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
        extra = ["--save-raw", str(tmp_path / "raw.safetensors")]
    code = main(["edit", "--model", kit256.bundle, "--image", str(image), "--text", "a smile", "-o", str(out),
                 "--no-align", "--device", "cpu", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert {"decompression bomb": "decompression bomb", "output under a file": "face.png",
            "disk full while saving raw": "No space left"}[case] in err
    inputs = {"face.png"} | ({"huge.png"} if case == "decompression bomb" else set())
    assert set(os.listdir(tmp_path)) == inputs  # nothing written beside the inputs, not even a .NAME.*.part file


def test_cli_bench_times_both_paths_and_checks_they_agree(standin256):
    """`bench` runs the fast and the reference path on the same weights and ends with one JSON line holding
    per-stage times, speedups, peak memory and the relative errors between the two paths."""
    import json

    p = _cli("bench", "--model", standin256, "--batch", "1", "--repeats", "1", "--device", "cpu")
    assert p.returncode == 0, p.stderr
    assert "whole edit" in p.stdout
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert report["size"] == 256 and report["device"] == "cpu" and report["compile"] is None
    (r,) = report["results"]
    assert r["batch"] == 1 and r["precision"] == "fp32" and r["finite"]
    stages = {"text", "encoder", "adapter+heads", "remapper", "synthesis", "edit"}
    for path in ("ref", "fast"):
        assert set(r["seconds"][path]) == stages and all(v > 0 for v in r["seconds"][path].values())
        assert r["peak_mem_mib"][path] >= 0
    assert set(r["speedup"]) == stages
    assert set(r["rel_err"]) == {"w", "w_hat - w", "conv_codes", "image", "edit_image"}
    assert all(v < 1e-5 for v in r["rel_err"].values()), r["rel_err"]
    assert r["compile_fallbacks"] == []
