"""Faults: text edge cases, out-of-memory retries, interruption, concurrent writers, files replaced on disk."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from clipinverter_core.batching import map_chunks
from clipinverter_core.errors import InputError
from clipinverter_core.images import uint8_to_encoder_input
from clipinverter_core.pipeline import CLIPInverter

from conftest import ROOT, rel_l2


@pytest.fixture(scope="module")
def model(kit256):
    return CLIPInverter.from_bundle(kit256.bundle, "cpu")


@pytest.mark.parametrize("texts", [[], [""], ["   \n"], ["a smile", ""]])
def test_empty_prompts_are_refused(model, texts):
    with pytest.raises(InputError, match="empty|no prompt"):
        model.encode_text(texts)


def test_long_prompts_are_cut_with_one_warning(model):
    long = " ".join(["blonde"] * 100)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        t = model.encode_text([long, long + " hair"])
    assert sum("CLIP reads 77" in str(w.message) for w in seen) == 1
    torch.testing.assert_close(t[0], t[1])  # the tail beyond 77 tokens is cut


def test_non_ascii_and_emoji(model):
    t = model.encode_text(["elle a les cheveux châtains 😀", "彼女は笑っている"])
    assert t.shape == (2, 512) and torch.isfinite(t).all()


def test_a_thousand_prompts_in_chunks_equal_one_by_one(model):
    texts = [f"a face number {i}" for i in range(1000)]
    t = model.encode_text(texts)
    assert t.shape == (1000, 512)
    torch.testing.assert_close(t[[0, 517, 999]], model.encode_text([texts[0], texts[517], texts[999]]),
                               rtol=1e-4, atol=1e-4)


def test_out_of_memory_shrinks_the_chunk_and_finishes():
    calls = []

    def fn(a, b):
        calls.append(b - a)
        if b - a > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return torch.arange(a, b)

    out = torch.cat(map_chunks(fn, 7))
    assert out.tolist() == list(range(7)) and calls[:3] == [7, 4, 2]
    with pytest.raises(ValueError):
        map_chunks(lambda a, b: (_ for _ in ()).throw(ValueError("other")), 3)


def test_an_edit_retried_in_chunks_equals_one_pass(model, kit256, monkeypatch):
    x = uint8_to_encoder_input(kit256.golden["input_uint8"])
    t = model.encode_text(["a smile", "red hair"])
    whole = model.edit(x, t)
    real_decode = model.decode

    def decode_with_small_memory(latent):
        if len(latent) > 1:
            raise RuntimeError("MPS backend out of memory (MPS allocated: 9.00 GB)")
        return real_decode(latent)

    monkeypatch.setattr(model, "decode", decode_with_small_memory)
    seen = []
    chunked = model.edit(x, t, progress=lambda done, n: seen.append((done, n)))
    assert seen == [(1, 2), (2, 2)]
    # the same computation; only float summation order differs with the batch size (about 5e-6)
    assert rel_l2(chunked.image, whole.image.numpy()) < 2e-5
    assert rel_l2(chunked.latent.conv, whole.latent.conv.numpy()) < 2e-5


def test_cancelling_between_chunks_stops_the_edit(model, kit256):
    x = uint8_to_encoder_input(kit256.golden["input_uint8"])
    t = model.encode_text(["a smile"])

    class Cancelled(Exception):
        pass

    calls = []

    def check():
        calls.append(1)
        if len(calls) > 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        model.edit(x, t, chunk=1, check=check)
    assert model.edit(x[:1], t).image.shape == (1, 3, 256, 256)  # the next run works


def test_an_interrupted_cli_leaves_no_file(kit256, tmp_path):
    Image.fromarray(kit256.golden["input_uint8"][0]).save(tmp_path / "face.png")
    code = ("import sys, clipinverter_core.images as im\n"
            "def boom(*a, **k): raise KeyboardInterrupt\n"
            "im.Image = None\n"  # any use of PIL while saving fails like a kill in the middle
            "from clipinverter_core.__main__ import main\n"
            "import PIL.Image\n"
            "PIL.Image.Image.save = boom\n"
            "sys.exit(main(sys.argv[1:]))\n")
    p = subprocess.run([sys.executable, "-c", code, "edit", "--model", kit256.bundle, "--image",
                        str(tmp_path / "face.png"), "--text", "x", "-o", str(tmp_path / "o.png"), "--no-align"],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=600)
    assert p.returncode == 130 and "interrupted" in p.stderr
    assert sorted(os.listdir(tmp_path)) == ["face.png"]


def test_two_processes_writing_one_output(kit256, tmp_path):
    Image.fromarray(kit256.golden["input_uint8"][0]).save(tmp_path / "face.png")
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-m", "clipinverter_core", "edit", "--model", kit256.bundle,
                               "--image", str(tmp_path / "face.png"), "--text", text, "-o", str(tmp_path / "o.png"),
                               "--no-align"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for text in ("a smile", "red hair")]
    assert all(p.wait(timeout=600) == 0 for p in procs)
    assert sorted(os.listdir(tmp_path)) == ["face.png", "o.png"]  # no temporary file left over
    assert np.asarray(Image.open(tmp_path / "o.png")).shape == (256, 256, 3)  # one whole picture


def test_a_bundle_replaced_on_disk_while_loaded(kit256, tmp_path):
    import shutil

    path = tmp_path / "b.safetensors"
    shutil.copy(kit256.bundle, path)
    mapped = CLIPInverter.from_bundle(str(path), "cpu", sections=("generator",))
    copied = CLIPInverter.from_bundle(str(path), "cpu", sections=("generator",), mmap=False)
    w = torch.randn(1, 14, 512, generator=torch.Generator().manual_seed(0))
    before = mapped.decode(w)
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"\0" * 1024)
    os.replace(other, path)                 # replaced by a rename: the mapped model keeps the old file
    torch.testing.assert_close(mapped.decode(w), before)
    with open(path, "r+b") as f:            # overwritten in place: only the copied model is safe
        f.write(b"\1" * 1024)
    torch.testing.assert_close(copied.decode(w), before)


def test_paths_with_spaces_and_non_ascii(kit256, tmp_path):
    from test_convert import _cli

    folder = tmp_path / "my models" / "modèles 顔"
    folder.mkdir(parents=True)
    bundle = folder / "clip inverter ü.safetensors"
    os.symlink(kit256.bundle, bundle)
    Image.fromarray(kit256.golden["input_uint8"][0]).save(folder / "visage à éditer.png")
    p = _cli("edit", "--model", bundle, "--image", folder / "visage à éditer.png", "--text", "a smile",
             "-o", folder / "résultat 1.png", "--no-align")
    assert p.returncode == 0, p.stderr
    assert np.asarray(Image.open(folder / "résultat 1.png")).shape == (256, 256, 3)


def test_a_file_in_the_folder_that_is_not_a_model(tmp_path):
    from test_convert import _cli

    (tmp_path / "notes.safetensors").write_text("these are my notes, not weights")
    p = _cli("info", tmp_path / "notes.safetensors")
    assert p.returncode == 2 and "not a readable safetensors file" in p.stderr and p.stderr.count("\n") == 1
