"""Faults: text edge cases, out-of-memory retries, interruption, concurrent writers, files replaced on disk."""
import hashlib
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
def model(standin256):
    return CLIPInverter.from_bundle(standin256, "cpu")


@pytest.mark.parametrize("texts", [[], [""], ["   \n"], ["a smile", ""]])
def test_empty_prompts_are_refused(model, texts):
    with pytest.raises(InputError, match="empty|no prompt"):
        model.encode_text(texts)


def test_long_prompts_are_cut_with_one_warning_per_run(model, standin256, monkeypatch):
    from clipinverter_core.networks.clip import Tokenizer

    monkeypatch.setattr(Tokenizer, "warned_long", False)  # as at the start of a run
    long = " ".join(["blonde"] * 100)
    other = CLIPInverter.from_bundle(standin256, "cpu", sections=("clip",))  # a second model in the same run
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        t = model.encode_text([long, long + " hair"])
        model.encode_text([long + " and a beard"])
        other.encode_text([long])
    assert sum("CLIP reads 77" in str(w.message) for w in seen) == 1
    torch.testing.assert_close(t[0], t[1])  # the tail beyond 77 tokens is cut


def test_non_ascii_and_emoji(model):
    t = model.encode_text(["elle a les cheveux châtains 😀", "彼女は笑っている"])
    assert t.shape == (2, 512) and torch.isfinite(t).all()


def test_many_prompts_in_chunks_equal_one_by_one(model):
    """20 prompts in chunks of 8 (two full chunks and a partial one): the prompts on each side of every chunk
    boundary, and the last, embed as they do alone. (300 in chunks of 128 checked the same chunking at 15 times
    the cost; the default chunk, TEXT_CHUNK, only sets the size.)"""
    texts = [f"a face number {i}" for i in range(20)]
    t = model.encode_text(texts, chunk=8)
    assert t.shape == (20, 512)
    edges = [0, 7, 8, 15, 16, 19]
    torch.testing.assert_close(t[edges], model.encode_text([texts[i] for i in edges]), rtol=1e-4, atol=1e-4)


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


def _cli_with(preamble: str, *args, **env):
    """The CLI in a subprocess, after `preamble` (Python code that patches what the test needs)."""
    code = preamble + "\nimport sys\nfrom clipinverter_core.__main__ import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", **env))


# PIL's save, patched: from the Nth call on it writes half the picture, then stops as Ctrl-C would.
INTERRUPTED_SAVE = """
import io, PIL.Image
real_save, calls = PIL.Image.Image.save, []
def save(self, fp, format=None, **kw):
    calls.append(fp)
    if len(calls) < {first_interrupted}:
        return real_save(self, fp, format=format, **kw)
    buf = io.BytesIO()
    real_save(self, buf, format=format or "PNG", **kw)
    with open(fp, "wb") as f:
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
    raise KeyboardInterrupt
PIL.Image.Image.save = save
"""


@pytest.mark.parametrize("first_interrupted, written", [(1, []), (2, ["o_0.png"])])
def test_an_interrupted_cli_says_what_it_wrote_and_leaves_no_partial_file(kit256, standin256, tmp_path,
                                                                           first_interrupted, written):
    Image.fromarray(kit256.golden["input_uint8"][0]).save(tmp_path / "face.png")
    p = _cli_with(INTERRUPTED_SAVE.format(first_interrupted=first_interrupted), "edit", "--model", standin256,
                  "--image", tmp_path / "face.png", "--text", "a smile", "--text", "red hair",
                  "-o", tmp_path / "o.png", "--no-align")
    _, err = p.communicate(timeout=600)
    assert p.returncode == 130, err
    if written:
        assert f"interrupted after writing {tmp_path / 'o_0.png'}; nothing else was written" in err
    else:
        assert "interrupted; no output was written" in err
    assert sorted(os.listdir(tmp_path)) == ["face.png", *written]
    for name in written:
        assert np.asarray(Image.open(tmp_path / name)).shape == (256, 256, 3)  # whole pictures


# PIL's save, patched: both processes meet, open their target, then write it 4096 bytes at a time in lock-step,
# taking turns to write each chunk last (chunk i: rank i % 2 last). Written in place, the one file would hold both
# pictures' chunks interleaved, every time; written through a temporary file each, each picture stays whole.
OVERLAPPING_SAVE = """
import io, os, time, PIL.Image
real_save, meeting, record = PIL.Image.Image.save, os.environ["MEETING"], os.environ["RECORD"]
def wait_for(name):
    deadline = time.time() + 300
    while not os.path.exists(os.path.join(meeting, name)):
        assert time.time() < deadline, "the other writer never came: " + name
        time.sleep(0.002)
def mark(name, text=""):
    with open(os.path.join(meeting, name + ".tmp"), "w") as f:
        f.write(text)
    os.replace(os.path.join(meeting, name + ".tmp"), os.path.join(meeting, name))
def save(self, fp, format=None, **kw):
    buf = io.BytesIO()
    real_save(self, buf, format=format or "PNG", **kw)
    data = buf.getvalue()
    chunks = [data[i:i + 4096] for i in range(0, len(data), 4096)]
    mark(f"pid.{os.getpid()}", str(len(chunks)))
    deadline = time.time() + 300
    while len([n for n in os.listdir(meeting) if n.startswith("pid.") and not n.endswith(".tmp")]) < 2:
        assert time.time() < deadline, "the other writer never came"
        time.sleep(0.01)
    pids = sorted(n for n in os.listdir(meeting) if n.startswith("pid.") and not n.endswith(".tmp"))
    rank = pids.index(f"pid.{os.getpid()}")
    n = max(int(open(os.path.join(meeting, p)).read()) for p in pids)
    with open(fp, "wb") as f:
        mark(f"open.{rank}")
        wait_for(f"open.{1 - rank}")  # both have opened (and truncated) before either writes
        for i in range(n):
            last = i % 2
            if rank == last:
                wait_for(f"{i}.first")
            if i < len(chunks):
                f.seek(i * 4096); f.write(chunks[i]); f.flush()
            if rank == last:
                mark(f"{i}.last")
            else:
                mark(f"{i}.first")
                wait_for(f"{i}.last")
    with open(os.path.join(record, f"{os.getpid()}.png"), "wb") as f:
        f.write(data)
PIL.Image.Image.save = save
"""


def test_two_processes_writing_one_output(kit256, standin256, tmp_path):
    out, meeting, record = tmp_path / "out", tmp_path / "meeting", tmp_path / "record"
    for d in (out, meeting, record):
        d.mkdir()
    Image.fromarray(kit256.golden["input_uint8"][0]).save(tmp_path / "face.png")
    procs = [_cli_with(OVERLAPPING_SAVE, "edit", "--model", standin256, "--image", tmp_path / "face.png",
                       "--text", text, "-o", out / "o.png", "--no-align", MEETING=str(meeting), RECORD=str(record))
             for text in ("a smile", "red hair")]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert os.listdir(out) == ["o.png"]  # no temporary file left over
    digest = lambda path: hashlib.sha256(path.read_bytes()).hexdigest()  # noqa: E731
    intended = {digest(f) for f in record.iterdir()}
    assert len(intended) == 2 and digest(out / "o.png") in intended, "the output mixes both writes"


@pytest.fixture
def generator_bundle(standin256, tmp_path):
    """A bundle of the stand-in's generator alone, in a file of the test's own (it gets overwritten)."""
    from clipinverter_core.weights.bundle import load_bundle, save_bundle

    b = load_bundle(standin256, sections=("generator",))
    path = tmp_path / "b.safetensors"
    save_bundle(str(path), b.tensors, b.metadata)
    return path


def _overwrite_in_place(path, key: str) -> None:
    """Zeroes one tensor's bytes inside the file, as `cp new old` or an editor would: same file, new contents."""
    import json

    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        start, end = json.loads(f.read(n))[key]["data_offsets"]
        f.seek(8 + n + start)
        f.write(bytes(end - start))


W = torch.randn(1, 14, 512, generator=torch.Generator().manual_seed(0))


def test_a_bundle_replaced_by_a_rename_while_loaded(generator_bundle, tmp_path):
    mapped = CLIPInverter.from_bundle(str(generator_bundle), "cpu", sections=("generator",))
    before = mapped.decode(W)
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"\0" * 1024)
    os.replace(other, generator_bundle)  # as our writers replace files: the mapped model keeps the old file
    torch.testing.assert_close(mapped.decode(W), before)


def test_a_bundle_overwritten_in_place_while_loaded(generator_bundle):
    """mmap=False (the ComfyUI loader) is safe; a mapped model reads the new bytes, which is why it is not used
    there. impl="ref" keeps the loaded tensors themselves (the fast path copies some when it folds them)."""
    load = lambda mmap: CLIPInverter.from_bundle(str(generator_bundle), "cpu", sections=("generator",),  # noqa: E731
                                                 mmap=mmap, impl="ref")
    copied, mapped = load(False), load(True)
    before = copied.decode(W)
    torch.testing.assert_close(mapped.decode(W), before)
    _overwrite_in_place(generator_bundle, "generator.input.input")  # the generator's constant input
    torch.testing.assert_close(copied.decode(W), before)
    assert not torch.allclose(mapped.decode(W), before)  # the overwrite reached the loaded file


def test_paths_with_spaces_and_non_ascii(kit256, standin256, tmp_path):
    from test_convert import _cli

    folder = tmp_path / "my models" / "modèles 顔"
    folder.mkdir(parents=True)
    bundle = folder / "clip inverter ü.safetensors"
    os.symlink(standin256, bundle)
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
