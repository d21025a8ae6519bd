"""Weights without a terminal: with the official files as downloaded in models/clipinverter, Load Inverter lists
clipinverter_faces.safetensors; the first run converts them into it beside them (through the core's converter, with
progress and cancel), later runs load it. The loader's fingerprint follows the chosen file, so a bundle replaced
under the same name is loaded again. And the messages that say where weights go. Without ComfyUI (comfy_stubs.py)."""
from __future__ import annotations

import os
import shutil

import pytest

from comfy_stubs import RECORD, InterruptProcessingException
from test_nodes import _fresh_record, comfy, nodes  # noqa: F401 - fixtures

BUNDLE = "clipinverter_faces.safetensors"


def offered(loader) -> list[str]:
    return loader.define_schema().inputs[0].options["options"]
OFFICIAL = ("clipinverter", "e4e", "clip")


@pytest.fixture
def folder(comfy, kit256):  # noqa: F811
    """A clipinverter model folder of its own holding the kit's three official files, as downloaded."""
    pack, fp, base = comfy
    path = base / "first_run"
    path.mkdir(exist_ok=True)
    for role in OFFICIAL:
        os.symlink(kit256.files[role], path / os.path.basename(kit256.files[role]))
    fp.add_model_folder_path("clipinverter", str(path), is_default=True)
    yield path
    fp.folder_names_and_paths["clipinverter"][0].remove(str(path))
    shutil.rmtree(path)


@pytest.fixture
def converter(comfy, kit256, monkeypatch):  # noqa: F811
    """The pack's converter, recorded: it logs its five steps as the real one does, then writes the kit's bundle
    (the real conversion of these files is test_convert's)."""
    import importlib

    calls = []
    module = importlib.import_module(comfy[0].__name__ + ".clipinverter_core.weights.convert")

    def convert(clipinverter, e4e, clip, out, log=print):
        calls.append((clipinverter, e4e, clip, out))
        for message in ("reading 1", "reading 2", "reading 3", "hashing", f"writing {out}"):
            log(message)
        os.symlink(kit256.bundle, out)
    monkeypatch.setattr(module, "convert", convert)
    return calls


def test_the_official_files_are_offered_converted_once_and_then_loaded(nodes, folder, converter, kit256):  # noqa: F811
    loader = nodes["CLIPInverterLoader"]
    assert BUNDLE in offered(loader) and not (folder / BUNDLE).exists()
    assert loader.validate_inputs(BUNDLE) is True
    first = loader.execute(BUNDLE, "cpu", "fp32").args[0]
    assert converter == [(str(folder / "pretrained_faces.pt"), str(folder / "e4e_ffhq_encode.pt"),
                          str(folder / "ViT-B-32.pt"), str(folder / BUNDLE))]
    bar = RECORD.progress[-1]
    assert bar.total == 6 and bar.current == 6
    assert (folder / BUNDLE).is_file() and first.inverter.size == kit256.size and first.name == BUNDLE
    loader.execute(BUNDLE, "cpu", "fp32")
    assert len(converter) == 1  # later runs load the bundle
    assert offered(loader).count(BUNDLE) == 1


def test_open_clip_s_files_count_as_the_clip_file(comfy, folder):  # noqa: F811
    import importlib

    paths = importlib.import_module(comfy[0].__name__ + ".nodes.paths")
    current = folder / "ViT-B-32.pt"
    for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        os.rename(current, folder / name)
        current = folder / name
        assert paths.pending_conversion(BUNDLE).clip == str(current)


def test_cancel_during_the_conversion_leaves_no_bundle(nodes, folder, converter):  # noqa: F811
    RECORD.interrupt_after_checks = 2  # cancel pressed while the second file is read
    with pytest.raises(InterruptProcessingException):
        nodes["CLIPInverterLoader"].execute(BUNDLE, "cpu", "fp32")
    assert not (folder / BUNDLE).exists() and BUNDLE in offered(nodes["CLIPInverterLoader"])


def test_two_of_three_files_are_not_offered_and_the_message_says_what_to_do(nodes, folder):  # noqa: F811
    os.remove(folder / "e4e_ffhq_encode.pt")
    loader = nodes["CLIPInverterLoader"]
    assert BUNDLE not in offered(loader)
    message = loader.validate_inputs(BUNDLE)
    assert "the three official files as downloaded" in message and "e4e_ffhq_encode.pt" in message


def test_the_fingerprint_follows_the_chosen_file(nodes, folder):  # noqa: F811
    loader = nodes["CLIPInverterLoader"]
    pending = loader.fingerprint_inputs(bundle=BUNDLE, device="cpu", precision="fp32")
    assert pending.startswith("convert:")
    os.remove(folder / "e4e_ffhq_encode.pt")
    (folder / "e4e_ffhq_encode.pt").write_bytes(b"another download")  # an official file replaced
    assert loader.fingerprint_inputs(bundle=BUNDLE, device="cpu", precision="fp32") != pending
    (folder / BUNDLE).write_bytes(b"converted")  # what the conversion leaves (the fingerprint reads no tensors)
    loaded = loader.fingerprint_inputs(bundle=BUNDLE, device="cpu", precision="fp32")
    assert loaded != pending
    assert loader.fingerprint_inputs(bundle=BUNDLE, device="cpu", precision="fp32") == loaded  # nothing changed
    st = os.stat(folder / BUNDLE)
    os.utime(folder / BUNDLE, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))  # replaced under the same name
    assert loader.fingerprint_inputs(bundle=BUNDLE, device="cpu", precision="fp32") != loaded


def test_refine_identity_without_alexnet_says_where_to_put_it_and_no_path_to_pass(nodes):  # noqa: F811
    with pytest.raises(Exception, match=r"alexnet-owt-7be5be79\.pth \(alexnet\) not found in .* put it there$") as e:
        nodes["CLIPInverterRefineIdentity"].execute(None, None, "photo", 1, 0.0, 0.0, "default")
    assert type(e.value).__name__ == "CheckpointError" and "pass its path" not in str(e.value)  # the node has no path
