"""Conversion of the official checkpoints into one safetensors bundle.

    pretrained_faces.pt   {'state_dict': {'adapter.*', 'decoder.*'}, 'opts'}      -> adapter.*, generator.*
    e4e_ffhq_encode.pt    {'state_dict': {'encoder.*', ...}, 'latent_avg'}        -> encoder.*, latent_avg
    ViT-B-32.pt           OpenAI TorchScript (through open_clip), or a state dict in
                          .pt / .bin / .safetensors                                -> clip.*

`.pt` files are read with torch.load(weights_only=True): a pickle that asks for anything but tensors and
plain containers is refused before it can run. TorchScript is read by open_clip, here only.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import pickletools
import warnings
import zipfile

import torch

from .. import __version__
from ..errors import CheckpointError, UnsafeCheckpointError
from ..networks import CLIPAdapter, Encoder4Editing, Generator, LEVELS, n_latent_for
from ..networks.clip import OPENAI_EXTRA_KEYS, config_from_state_dict
from ..networks.stylegan2 import STYLE_DIM
from .bundle import check_state_dict, fmt_shape, save_bundle


# --- reading the official files safely ---------------------------------------------------------------------
def is_torchscript(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())


def is_safetensors(path: str) -> bool:
    """A safetensors file starts with its header's length (8 bytes, little-endian), then the JSON header."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000


def load_pt(path: str):
    """torch.load(weights_only=True), with one-line errors for refused, truncated and foreign files."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no file at {path}")
    if is_torchscript(path):
        raise CheckpointError(f"{path}: a TorchScript archive, not a checkpoint of plain tensors")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before refusing
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except pickle.UnpicklingError:
        culprit = _foreign_global(path)
        what = f" ({culprit})" if culprit else ""
        raise UnsafeCheckpointError(
            f"{path}: refused: its pickle asks to run or build something other than tensors{what}; "
            "nothing in it was run. Use the official file, or a state dict saved with torch.save") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({msg}); is it truncated?") from None


_PLAIN_MODULES = ("torch", "collections", "builtins", "_codecs", "numpy")


def _foreign_global(path: str) -> str | None:
    """The first global a pickle names outside torch and plain containers, read without running anything."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                name = next(n for n in z.namelist() if n.endswith("data.pkl"))
                data = z.read(name)
        else:
            with open(path, "rb") as f:
                data = f.read()
        strings: list[str] = []
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                strings.append(arg)
            glob = arg.replace(" ", ".") if op.name == "GLOBAL" else \
                ".".join(strings[-2:]) if op.name == "STACK_GLOBAL" and len(strings) >= 2 else None
            if glob and not glob.startswith(_PLAIN_MODULES):
                return glob
    except Exception:  # a malformed pickle: the refusal stands, without a name
        return None
    return None


def read_clip_state_dict(path: str) -> dict[str, torch.Tensor]:
    """CLIP ViT-B/32 weights in the OpenAI key layout, from any of the files users hold."""
    if is_safetensors(path):
        from safetensors.torch import load_file
        try:
            sd = load_file(path)
        except Exception as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]})") from None
    elif is_torchscript(path):
        import open_clip  # TorchScript is read by open_clip, and only here

        model = open_clip.load_openai_model(path, precision="fp32", device="cpu")
        sd = model.state_dict()
    else:
        sd = load_pt(path)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: not a CLIP state dict")
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    return {k: v for k, v in sd.items() if k not in OPENAI_EXTRA_KEYS}


def _section(sd: dict, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _state_dict_of(ckpt, path: str) -> dict:
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path}: expected a dict with a 'state_dict' entry (an official checkpoint)")
    return ckpt["state_dict"]


def size_from_generator_keys(sd: dict, path: str) -> int:
    n_conv = len([k for k in sd if k.startswith("noises.noise_")])
    if n_conv < 3 or n_conv % 2 == 0:
        raise CheckpointError(f"{path}: cannot tell the StyleGAN size: {n_conv} noise buffers")
    return 2 ** ((n_conv - 1) // 2 + 2)


def sha256_of(path: str, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def _meta_module(cls, *args):
    with torch.device("meta"):
        return cls(*args)


# --- conversion ---------------------------------------------------------------------------------------------
def convert(clipinverter: str, e4e: str, clip: str, out: str, log=print) -> dict:
    """Reads the three official files, checks every key and shape, writes one bundle. Returns its metadata."""
    log(f"reading {clipinverter}")
    ci = load_pt(clipinverter)
    ci_sd = _state_dict_of(ci, clipinverter)
    gen_sd = _section(ci_sd, "decoder.")
    adapter_sd = _section(ci_sd, "adapter.")
    if not gen_sd or not adapter_sd:
        raise CheckpointError(f"{clipinverter}: no 'decoder.*' or 'adapter.*' keys: is this pretrained_faces.pt "
                              "(the CLIPInverter checkpoint)?")
    size = size_from_generator_keys(gen_sd, clipinverter)
    opts = ci.get("opts") if isinstance(ci.get("opts"), dict) else {}
    if opts.get("stylegan_size") not in (None, size):
        raise CheckpointError(f"{clipinverter}: opts say StyleGAN size {opts['stylegan_size']}, weights say {size}")
    n_latent = n_latent_for(size)
    check_state_dict(_meta_module(Generator, size, True), gen_sd, f"{clipinverter} (decoder)")
    levels = [lv for lv in LEVELS if any(k.startswith(f"{lv}_mapping.") for k in adapter_sd)]
    check_state_dict(_meta_module(CLIPAdapter, levels), adapter_sd, f"{clipinverter} (adapter)")

    log(f"reading {e4e}")
    e = load_pt(e4e)
    enc_sd = _section(_state_dict_of(e, e4e), "encoder.")
    if not enc_sd:
        raise CheckpointError(f"{e4e}: no 'encoder.*' keys: is this e4e_ffhq_encode.pt?")
    enc_n = len({k.split(".")[1] for k in enc_sd if k.startswith("styles.")})
    if enc_n != n_latent:
        raise CheckpointError(f"{e4e}: the encoder writes {enc_n} W+ rows (StyleGAN size "
                              f"{2 ** ((enc_n + 2) // 2)}), the generator in {clipinverter} takes {n_latent} "
                              f"(size {size}); use files made for the same StyleGAN")
    check_state_dict(_meta_module(Encoder4Editing, n_latent), enc_sd, f"{e4e} (encoder)")
    latent_avg = e.get("latent_avg")
    if not isinstance(latent_avg, torch.Tensor):
        raise CheckpointError(f"{e4e}: no 'latent_avg' tensor (needed: the inversion is relative to it)")
    if tuple(latent_avg.shape) == (STYLE_DIM,):
        latent_avg = latent_avg[None].expand(n_latent, STYLE_DIM)
    if tuple(latent_avg.shape) != (n_latent, STYLE_DIM):
        raise CheckpointError(f"{e4e}: key 'latent_avg' has shape {fmt_shape(latent_avg.shape)}, expected "
                              f"({n_latent}, {STYLE_DIM}) or ({STYLE_DIM},)")

    log(f"reading {clip}")
    clip_sd = read_clip_state_dict(clip)
    try:
        cfg = config_from_state_dict(clip_sd)
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{clip}: not a CLIP ViT state dict ({err})") from None
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
    with torch.device("meta"):
        ref = CLIP(cfg["embed_dim"], vision_cfg=CLIPVisionCfg(**cfg["vision"]),
                   text_cfg=CLIPTextCfg(**cfg["text"]), quick_gelu=True)
    check_state_dict(ref, clip_sd, f"{clip} (CLIP)")
    if cfg["embed_dim"] != STYLE_DIM:
        raise CheckpointError(f"{clip}: CLIP embeddings of {cfg['embed_dim']} values; CLIPInverter takes ViT-B/32's 512")

    tensors = {}
    tensors.update({"encoder." + k: v.float() if v.is_floating_point() else v for k, v in enc_sd.items()})
    tensors.update({"adapter." + k: v.float() for k, v in adapter_sd.items()})
    tensors.update({"generator." + k: v.float() for k, v in gen_sd.items()})
    tensors["latent_avg"] = latent_avg.float().contiguous()
    tensors.update({"clip." + k: v.float() for k, v in clip_sd.items()})  # float32: zero-copy loading
    log("hashing the source files")
    sources = [{"role": role, "file": os.path.basename(p), "sha256": sha256_of(p), "bytes": os.path.getsize(p)}
               for role, p in (("clipinverter", clipinverter), ("e4e", e4e), ("clip", clip))]
    meta = {
        "stylegan_size": str(size),
        "n_latent": str(n_latent),
        "components": json.dumps(["encoder", "adapter", "generator", "remapper", "latent_avg",
                                  "clip_text", "clip_visual"]),
        "adapter_levels": json.dumps(levels),
        "sources": json.dumps(sources),
        "created_by": f"clipinverter_core {__version__}",
    }
    log(f"writing {out}")
    save_bundle(out, tensors, meta)
    return meta

