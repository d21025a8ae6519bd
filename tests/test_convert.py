"""Conversion of the official files, and safety: no pickle runs code, every mismatch is named."""
import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from clipinverter_core.weights.convert import convert
from clipinverter_core.weights.official import load_pt
from clipinverter_core.errors import CheckpointError, UnsafeCheckpointError
from clipinverter_core.pipeline import CLIPInverter
from clipinverter_core.weights.bundle import FORMAT, load_bundle, read_metadata

from conftest import ROOT


class RunsCode:
    """Unpickling this would call os.system: the attack a weights file can carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "opts": RunsCode(marker)}, evil)
    with pytest.raises(UnsafeCheckpointError) as e:
        load_pt(str(evil))
    msg = str(e.value)
    assert "\n" not in msg and "refused" in msg and "system" in msg
    assert not marker.exists()


def test_the_cli_refuses_it_with_one_line_and_exit_code_2(tmp_path, kit256):
    marker = tmp_path / "pwned"
    evil = tmp_path / "pretrained_faces.pt"
    with open(evil, "wb") as f:  # a plain pickle (not even a torch zip)
        pickle.dump({"state_dict": RunsCode(marker)}, f)
    out = tmp_path / "b.safetensors"
    p = _cli("convert", "--clipinverter", evil, "--e4e", kit256.files["e4e"], "--clip", kit256.files["clip"],
             "-o", out)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "refused" in p.stderr
    assert not marker.exists() and not out.exists()


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "clipinverter_core", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=600)


def test_bundle_metadata_and_contents(kit256):
    meta = read_metadata(kit256.bundle)
    assert meta["format"] == FORMAT and meta["format_version"] == "1"
    assert meta["stylegan_size"] == "256" and meta["n_latent"] == "14"
    assert set(json.loads(meta["components"])) >= {"encoder", "adapter", "generator", "remapper", "latent_avg",
                                                     "clip_text", "clip_visual"}
    sources = {s["role"]: s for s in json.loads(meta["sources"])}
    assert sources["e4e"]["file"] == "e4e_ffhq_encode.pt" and len(sources["e4e"]["sha256"]) == 64
    with safe_open(kit256.bundle, "pt") as f:
        keys = set(f.keys())
        assert f.get_slice("latent_avg").get_shape() == [14, 512]
        clip_w = f.get_tensor("clip.token_embedding.weight")  # float32 (zero-copy loads), holding fp16 values
        assert clip_w.dtype == torch.float32 and torch.equal(clip_w.half().float(), clip_w)
        assert f.get_tensor("generator.lambdas.0").ndim == 0
    assert {k.split(".")[0] for k in keys} == {"encoder", "adapter", "generator", "clip", "latent_avg"}


def test_info_command(kit256):
    p = _cli("info", kit256.bundle)
    assert p.returncode == 0, p.stderr
    assert "StyleGAN size: 256" in p.stdout and "e4e_ffhq_encode.pt" in p.stdout


def test_latent_avg_of_shape_512_is_accepted(tmp_path, kit256):
    ckpt = torch.load(kit256.files["e4e"], weights_only=True, mmap=True)
    ckpt["latent_avg"] = ckpt["latent_avg"][3].clone()
    e4e = tmp_path / "e4e_512.pt"
    torch.save(ckpt, e4e)
    out = tmp_path / "b.safetensors"
    convert(kit256.files["clipinverter"], str(e4e), kit256.files["clip"], str(out), log=lambda *_: None)
    b = load_bundle(str(out), sections=("encoder",))
    assert torch.equal(b.tensors["latent_avg"], ckpt["latent_avg"][None].expand(14, 512))


def _rewrite_e4e(tmp_path, kit, edit):
    ckpt = torch.load(kit.files["e4e"], weights_only=True, mmap=True)
    edit(ckpt["state_dict"])
    path = tmp_path / "e4e_edited.pt"
    torch.save(ckpt, path)
    return str(path)


def test_wrong_shape_names_the_key_and_both_shapes(tmp_path, kit256):
    def edit(sd):
        sd["encoder.latlayer1.weight"] = torch.zeros(512, 255, 1, 1)
    e4e = _rewrite_e4e(tmp_path, kit256, edit)
    with pytest.raises(CheckpointError, match=r"'latlayer1.weight' has shape \(512, 255, 1, 1\), "
                                              r"expected \(512, 256, 1, 1\)"):
        convert(kit256.files["clipinverter"], e4e, kit256.files["clip"], str(tmp_path / "b.safetensors"),
                log=lambda *_: None)
    assert not (tmp_path / "b.safetensors").exists()


def test_missing_and_unexpected_keys_are_named(tmp_path, kit256):
    e4e = _rewrite_e4e(tmp_path, kit256, lambda sd: sd.pop("encoder.body.3.res_layer.1.weight"))
    with pytest.raises(CheckpointError, match=r"missing key 'body.3.res_layer.1.weight' \(expected shape "
                                              r"\(128, 64, 3, 3\)\)"):
        convert(kit256.files["clipinverter"], e4e, kit256.files["clip"], str(tmp_path / "b"), log=lambda *_: None)
    e4e = _rewrite_e4e(tmp_path, kit256, lambda sd: sd.__setitem__("encoder.extra.weight", torch.zeros(3)))
    with pytest.raises(CheckpointError, match=r"unexpected key 'extra.weight' \(shape \(3\)\)"):
        convert(kit256.files["clipinverter"], e4e, kit256.files["clip"], str(tmp_path / "b"), log=lambda *_: None)


def test_encoder_for_another_stylegan_size_is_refused(tmp_path, kit256):
    def drop_rows(sd):
        for k in [k for k in sd if k.startswith(("encoder.styles.12.", "encoder.styles.13."))]:
            del sd[k]
    e4e = _rewrite_e4e(tmp_path, kit256, drop_rows)
    with pytest.raises(CheckpointError, match=r"12 W\+ rows \(StyleGAN size 128\).*takes 14 \(size 256\)"):
        convert(kit256.files["clipinverter"], e4e, kit256.files["clip"], str(tmp_path / "b"), log=lambda *_: None)


def test_swapped_files_are_named(tmp_path, kit256):
    with pytest.raises(CheckpointError, match="pretrained_faces.pt"):
        convert(kit256.files["e4e"], kit256.files["e4e"], kit256.files["clip"], str(tmp_path / "b"),
                log=lambda *_: None)


def test_truncated_files(tmp_path, kit256):
    cut = tmp_path / "cut.pt"
    with open(kit256.files["clipinverter"], "rb") as f:
        cut.write_bytes(f.read(1_000_000))
    with pytest.raises(CheckpointError, match="truncated"):
        load_pt(str(cut))
    cut_bundle = tmp_path / "cut.safetensors"
    with open(kit256.bundle, "rb") as f:
        cut_bundle.write_bytes(f.read(5_000_000))
    with pytest.raises(CheckpointError, match="truncated"):
        load_bundle(str(cut_bundle))


def test_a_bundle_of_another_format_version_or_no_bundle(tmp_path):
    other = tmp_path / "v9.safetensors"
    save_file({"x": torch.zeros(1)}, str(other), metadata={"format": FORMAT, "format_version": "9"})
    with pytest.raises(CheckpointError, match="format version 9"):
        read_metadata(str(other))
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(1)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a CLIPInverter bundle"):
        CLIPInverter.from_bundle(str(foreign))


def test_a_bundle_with_a_wrong_shape_names_the_key(tmp_path, kit256):
    b = load_bundle(kit256.bundle, sections=("adapter",))
    t = dict(b.tensors)
    t["adapter.fine_mapping.modulation_module_list.0.norm.weight"] = torch.zeros(127)
    bad = tmp_path / "bad.safetensors"
    save_file(t, str(bad), metadata=b.metadata)
    with pytest.raises(CheckpointError, match=r"fine_mapping.modulation_module_list.0.norm.weight' has shape "
                                              r"\(127\), expected \(128\)"):
        CLIPInverter.from_bundle(str(bad))


@pytest.fixture(scope="module")
def tiny_clip():
    """A small ViT CLIP with fp16 values (as the released weights are) and OpenAI's key layout."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(0)
    m = CLIP(512, vision_cfg=CLIPVisionCfg(layers=1, width=64, patch_size=32, image_size=64, head_width=64),
             text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=1, layers=1),
             quick_gelu=True).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.half().float())
    mask = m.attn_mask  # OpenAI's model keeps the mask as a plain attribute, not in the state dict
    del m._buffers["attn_mask"]
    m.attn_mask = mask
    return m


def test_clip_from_torchscript_safetensors_and_bin(tmp_path, tiny_clip):
    import warnings

    from clipinverter_core.weights.official import read_clip_state_dict

    ref = tiny_clip.state_dict()
    img, txt = torch.ones(1, 3, 64, 64), torch.zeros(1, 77, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace_module(tiny_clip, dict(forward=(img, txt), encode_text=(txt,), encode_image=(img,)))
    torch.jit.save(traced, tmp_path / "ViT-B-32.pt")  # the OpenAI release is such a TorchScript archive
    save_file({k: v.contiguous() for k, v in ref.items()}, str(tmp_path / "open_clip_model.safetensors"))
    torch.save({"state_dict": {"module." + k: v for k, v in ref.items()}}, tmp_path / "open_clip_pytorch_model.bin")
    for name in ("ViT-B-32.pt", "open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        sd = read_clip_state_dict(str(tmp_path / name))
        assert set(sd) == set(ref), name
        assert all(torch.equal(sd[k].float(), ref[k].float()) for k in ref), name
