"""Reading the official checkpoints (CLIPInverter, e4e, rosinality StyleGAN2, CLIP) into checked state dicts.

    pretrained_faces.pt / a stage-1 result  {'state_dict': {'adapter.*', 'decoder.*'}, 'opts'}  clipinverter_sections
    e4e_ffhq_encode.pt                      {'state_dict': {'encoder.*', ...}, 'latent_avg'}    e4e_sections
    stylegan2-ffhq-config-f.pt              {'g_ema': ..., ...}                                  stylegan2_generator
    ViT-B-32.pt                             OpenAI TorchScript (through open_clip), or a state dict in
                                            .pt / .bin / .safetensors                            clip_state_dict
Every section comes back checked key by key and shape by shape against our networks (built on 'meta'), so a
wrong file fails here with one line naming it. `.pt` files are read with torch.load(weights_only=True): a
pickle that asks for anything but tensors and plain containers is refused before it can run. TorchScript is
read by open_clip, here only.
"""
from __future__ import annotations

import os
import pickle
import pickletools
import warnings
import zipfile

import torch

from ..errors import CheckpointError, UnsafeCheckpointError
from ..networks import LEVELS, CLIPAdapter, Encoder4Editing, Generator, size_for
from ..networks.clip import OPENAI_EXTRA_KEYS, config_from_state_dict
from ..networks.stylegan2 import STYLE_DIM
from .bundle import check_state_dict, fmt_shape


# --- reading a file safely ------------------------------------------------------------------------------------
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


# --- small pieces -----------------------------------------------------------------------------------------------
def section(sd: dict, prefix: str) -> dict[str, torch.Tensor]:
    """The entries of `sd` under `prefix`, prefix stripped."""
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def state_dict_of(ckpt, path: str) -> dict:
    """The 'state_dict' entry of an official checkpoint."""
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path}: expected a dict with a 'state_dict' entry (an official checkpoint)")
    return ckpt["state_dict"]


def size_from_generator_keys(sd: dict, path: str) -> int:
    """The StyleGAN size of a generator state dict, from its noise buffers."""
    n_conv = len([k for k in sd if k.startswith("noises.noise_")])
    if n_conv < 3 or n_conv % 2 == 0:
        raise CheckpointError(f"{path}: cannot tell the StyleGAN size: {n_conv} noise buffers")
    return 2 ** ((n_conv - 1) // 2 + 2)


def adapter_levels(adapter_sd: dict) -> list[str]:
    """The levels (coarse, medium, fine) an adapter state dict has mappings for, in LEVELS order."""
    return [lv for lv in LEVELS if any(k.startswith(f"{lv}_mapping.") for k in adapter_sd)]


def meta_module(cls, *args, **kwargs):
    """cls(*args, **kwargs) built on the 'meta' device: its keys and shapes, no memory."""
    with torch.device("meta"):
        return cls(*args, **kwargs)


def latent_avg_rows(latent_avg: torch.Tensor, n_latent: int, what: str) -> torch.Tensor:
    """latent_avg as (n_latent, 512): a (512,) one repeated on every row (a view); any other shape refused."""
    if tuple(latent_avg.shape) == (STYLE_DIM,):
        latent_avg = latent_avg[None].expand(n_latent, STYLE_DIM)
    if tuple(latent_avg.shape) != (n_latent, STYLE_DIM):
        raise CheckpointError(f"{what}: key 'latent_avg' has shape {fmt_shape(latent_avg.shape)}, expected "
                              f"({n_latent}, {STYLE_DIM}) or ({STYLE_DIM},)")
    return latent_avg


# --- the official files ---------------------------------------------------------------------------------------
def clipinverter_sections(path: str, need_remapper: bool = True) -> tuple[dict, dict, int, list[str]]:
    """(adapter_sd, generator_sd, size, levels) of pretrained_faces.pt, checked; need_remapper False also takes
    a decoder without the CLIPRemapper (a stage-1 result)."""
    ckpt = load_pt(path)
    sd = state_dict_of(ckpt, path)
    gen_sd, adapter_sd = section(sd, "decoder."), section(sd, "adapter.")
    if not gen_sd or not adapter_sd:
        raise CheckpointError(f"{path}: no 'decoder.*' or 'adapter.*' keys: is this pretrained_faces.pt "
                              "(the CLIPInverter checkpoint)?")
    size = size_from_generator_keys(gen_sd, path)
    opts = ckpt.get("opts") if isinstance(ckpt.get("opts"), dict) else {}
    if opts.get("stylegan_size") not in (None, size):
        raise CheckpointError(f"{path}: opts say StyleGAN size {opts['stylegan_size']}, weights say {size}")
    remapper = need_remapper or any(k.startswith("lambdas.") for k in gen_sd)
    check_state_dict(meta_module(Generator, size, remapper), gen_sd, f"{path} (decoder)")
    levels = adapter_levels(adapter_sd)
    check_state_dict(meta_module(CLIPAdapter, levels), adapter_sd, f"{path} (adapter)")
    return adapter_sd, gen_sd, size, levels


def e4e_sections(path: str, n_latent: int, generator: str = "the generator") -> tuple[dict, torch.Tensor]:
    """(encoder_sd, latent_avg (n_latent, 512)) of e4e_ffhq_encode.pt, checked against a generator of
    n_latent W+ rows (`generator` names it in the error)."""
    ckpt = load_pt(path)
    enc_sd = section(state_dict_of(ckpt, path), "encoder.")
    if not enc_sd:
        raise CheckpointError(f"{path}: no 'encoder.*' keys: is this e4e_ffhq_encode.pt?")
    rows = len({k.split(".")[1] for k in enc_sd if k.startswith("styles.")})
    if rows != n_latent:
        raise CheckpointError(f"{path}: the encoder writes {rows} W+ rows (StyleGAN size {size_for(rows)}), "
                              f"{generator} takes {n_latent} (size {size_for(n_latent)}); "
                              "use files made for the same StyleGAN")
    check_state_dict(meta_module(Encoder4Editing, n_latent), enc_sd, f"{path} (encoder)")
    latent_avg = ckpt.get("latent_avg")
    if not isinstance(latent_avg, torch.Tensor):
        raise CheckpointError(f"{path}: no 'latent_avg' tensor (needed: the inversion is relative to it)")
    return enc_sd, latent_avg_rows(latent_avg, n_latent, path)


def stylegan2_generator(path: str) -> tuple[dict, int]:
    """(generator_sd, size) of rosinality's StyleGAN2 checkpoint (its `g_ema`), checked."""
    ckpt = load_pt(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("g_ema"), dict):
        raise CheckpointError(f"{path}: expected a rosinality StyleGAN2 checkpoint with 'g_ema'")
    gen_sd = ckpt["g_ema"]
    size = size_from_generator_keys(gen_sd, path)
    check_state_dict(meta_module(Generator, size, False), gen_sd, f"{path} (g_ema)")
    return gen_sd, size


# --- CLIP -------------------------------------------------------------------------------------------------------
def read_clip_state_dict(path: str) -> dict[str, torch.Tensor]:
    """CLIP ViT-B/32 weights in the OpenAI key layout, from any of the files users hold (not checked)."""
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


def clip_state_dict(path: str) -> dict[str, torch.Tensor]:
    """read_clip_state_dict, checked: a ViT CLIP whose keys and shapes match open_clip's, embeddings of 512."""
    sd = read_clip_state_dict(path)
    try:
        cfg = config_from_state_dict(sd)
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{path}: not a CLIP ViT state dict ({err})") from None
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
    ref = meta_module(CLIP, cfg["embed_dim"], vision_cfg=CLIPVisionCfg(**cfg["vision"]),
                      text_cfg=CLIPTextCfg(**cfg["text"]), quick_gelu=True)
    check_state_dict(ref, sd, f"{path} (CLIP)")
    if cfg["embed_dim"] != STYLE_DIM:
        raise CheckpointError(f"{path}: CLIP embeddings of {cfg['embed_dim']} values; "
                              "CLIPInverter takes ViT-B/32's 512")
    return sd
