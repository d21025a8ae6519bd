"""The frozen networks of the training losses and the metrics: identity (ArcFace IR-SE50 for faces, MoCo v2
ResNet-50 for other domains) and perception (LPIPS AlexNet v0.1), and where their files are found.

Every network is returned frozen: eval mode, requires_grad False. `.pt/.pth` files are read with
torch.load(weights_only=True); nothing is downloaded (torchvision and lpips build their modules without
weights, which are then loaded from the user's local files).
"""
from __future__ import annotations

import os
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from . import PACK_ROOT
from .errors import CheckpointError
from .networks.arcface import ARCFACE_INPUT, ArcFaceIRSE50
from .weights.bundle import check_state_dict

DEFAULT_FOLDERS = (os.path.join(PACK_ROOT, "models", "clipinverter"),)
LOSS_FILES = {"arcface": "model_ir_se50.pth", "alexnet": "alexnet-owt-7be5be79.pth",
              "moco": "moco_v2_800ep_pretrain.pt"}
WHERE_TO_GET = {
    "arcface": "the pSp / e4e README's 'IR-SE50 Model' link (TreB1eN's InsightFace_Pytorch ArcFace)",
    "alexnet": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth (torchvision's AlexNet)",
    "moco": "https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar "
            "(MoCo v2, 800 epochs; save it as moco_v2_800ep_pretrain.pt)",
}
# The official IDLoss's face region of a 256x256 image: rows 35..222, columns 32..219, pooled to 112x112.
ARCFACE_CROP = (slice(35, 223), slice(32, 220))
MOCO_INPUT = 224           # MocoLoss resizes (nearest) to 224x224
MOCO_PREFIX = "module.encoder_q."


def find_loss_file(kind: str, explicit: str | None = None, folders: list[str] | None = None,
                   can_pass_path: bool = True) -> str:
    """The explicit path if given, else the first folder holding LOSS_FILES[kind]. `can_pass_path`: the caller
    takes a path (the CLI and the API do, the nodes do not), and the message says so."""
    if kind not in LOSS_FILES:
        raise ValueError(f"unknown loss network {kind!r}; one of {sorted(LOSS_FILES)}")
    name = LOSS_FILES[kind]
    if explicit:
        if not os.path.isfile(explicit):
            raise CheckpointError(f"no {kind} file at {explicit} (expected {name}; get it from {WHERE_TO_GET[kind]})")
        return explicit
    folders = list(folders) if folders else list(DEFAULT_FOLDERS)
    for folder in folders:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise CheckpointError(f"{name} ({kind}) not found in {', '.join(folders)}; get it from {WHERE_TO_GET[kind]} "
                          "and put it there" + (", or pass its path" if can_pass_path else ""))


def _read(path: str) -> dict:
    from .weights.official import load_pt  # safe torch.load with one-line errors

    return load_pt(path)


def _frozen(module: nn.Module, device, dtype) -> nn.Module:
    return module.to(device=device, dtype=dtype).eval().requires_grad_(False)


def _load_into(module: nn.Module, sd: dict, what: str) -> nn.Module:
    check_state_dict(module, sd, what)
    module.load_state_dict(sd, strict=True)
    return module


class IdentityNet(nn.Module):
    """A frozen identity embedding: images (B, 3, 256, 256) in [-1, 1] -> (B, D) unit-norm features."""

    def forward(self, img: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class ArcFaceIdentity(IdentityNet):
    """The official IDLoss's features: crop [:, :, 35:223, 32:220], adaptive average pool to 112x112,
    ArcFace IR-SE50 (L2-normalised). D = 512."""

    def __init__(self, net: ArcFaceIRSE50):
        super().__init__()
        self.net = net

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = img[:, :, ARCFACE_CROP[0], ARCFACE_CROP[1]]
        return self.net(F.adaptive_avg_pool2d(x, ARCFACE_INPUT))


class MocoIdentity(IdentityNet):
    """The official MocoLoss's features: nearest resize to 224x224, ResNet-50 without its fc (global average
    pool), L2-normalised (F.normalize). D = 2048."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(F.interpolate(img, size=MOCO_INPUT)), dim=1)


class PerceptualNet(nn.Module):
    """LPIPS AlexNet v0.1 through the `lpips` package: (a, b) (B, 3, H, W) in [-1, 1] -> (B,) distances.

    d(a, b) = sum_l mean_hw( w_l . (n(f_l(s(a))) - n(f_l(s(b))))^2 ), s(x) = (x - shift) / scale (lpips'
    ScalingLayer), n(v) = v / (||v||_channels + 1e-10), f_l the AlexNet ReLU taps 1..5, w_l the v0.1 linear
    layers; the official criteria/lpips computes the same and averages it over the batch."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.model(a, b, normalize=False).flatten()


def load_arcface(path: str, device=None, dtype: torch.dtype = torch.float32) -> IdentityNet:
    sd = _read(path)
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    net = _load_into(ArcFaceIRSE50(), sd, f"{path} (ArcFace IR-SE50)")
    return _frozen(ArcFaceIdentity(net), device, dtype)


def load_moco(path: str, device=None, dtype: torch.dtype = torch.float32) -> IdentityNet:
    import torchvision

    ckpt = _read(path)
    sd = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: expected a MoCo checkpoint (a dict with 'state_dict')")
    sd = {k[len(MOCO_PREFIX):]: v for k, v in sd.items()
          if k.startswith(MOCO_PREFIX) and not k.startswith(MOCO_PREFIX + "fc.")}
    resnet = torchvision.models.resnet50(weights=None)
    resnet.fc = nn.Identity()   # the official MocoLoss drops fc: the output is the global average pool
    _load_into(resnet, sd, f"{path} (MoCo v2 ResNet-50)")
    return _frozen(MocoIdentity(resnet), device, dtype)


def lpips_linear_layers_path() -> str:
    import lpips

    return os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", "alex.pth")


def load_lpips(alexnet_path: str, device=None, dtype: torch.dtype = torch.float32) -> PerceptualNet:
    """LPIPS with the `lpips` package's v0.1 linear layers and the AlexNet features of `alexnet_path`."""
    import lpips

    default = torch.get_default_dtype()
    try:
        # lpips builds its input scaling from decimal constants (torch.Tensor([-.030, ...])): built in the run's
        # dtype they are the decimals, not their float32 roundings (which move a float64 LPIPS by 1.5e-9)
        torch.set_default_dtype(dtype if dtype in (torch.float32, torch.float64) else torch.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lpips passes torchvision the deprecated `pretrained=False`
            model = lpips.LPIPS(net="alex", version="0.1", pretrained=False, pnet_rand=True, verbose=False)
    finally:
        torch.set_default_dtype(default)
    lin = torch.load(lpips_linear_layers_path(), map_location="cpu", weights_only=True)
    own = {f"lin{i}.model.1.weight" for i in range(len(model.lins))}   # `lins.N` are the same modules
    if set(lin) != own:
        raise CheckpointError(f"{lpips_linear_layers_path()}: not the lpips v0.1 AlexNet linear layers")
    model.load_state_dict(lin, strict=False)
    sd = _read(alexnet_path)
    feats = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")} \
        if isinstance(sd, dict) else {}
    # lpips keeps torchvision's `features.N` modules under `slice1..5.N`
    target = {f"{name}.{key}": key for name, part in model.net.named_children() for key in part.state_dict()}
    target = {k: feats[v] for k, v in target.items() if v in feats}
    if not feats:
        raise CheckpointError(f"{alexnet_path}: no 'features.*' keys: is this torchvision's AlexNet?")
    _load_into(model.net, target, f"{alexnet_path} (AlexNet features)")
    return _frozen(PerceptualNet(model), device, dtype)
