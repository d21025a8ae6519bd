"""A stand-in of the FID Inception-v3 file: torch-fidelity's layout (the keys and shapes of
weights-inception-2015-12-05-6726825d.pth), random weights (He-normal convolutions, so that the pool features
neither vanish nor explode). Written once per session; about 95 MB."""
from __future__ import annotations

import io

import torch

FILE = "pt_inception-2015-12-05-6726825d.pth"


def inception_layout() -> dict[str, torch.Tensor]:
    """torch-fidelity's InceptionV3 state dict at its constructor's init (its loading skipped once)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3 as Net

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    load = Net.load_state_dict
    Net.load_state_dict = lambda self, sd, *a, **k: None
    try:
        return Net("layout", ["2048"], feature_extractor_weights_path=empty).state_dict()
    finally:
        Net.load_state_dict = load


def write_standin_inception(path: str, seed: int = 0) -> str:
    g = torch.Generator().manual_seed(seed)
    sd = inception_layout()
    for k, v in sd.items():
        if k.endswith("conv.weight"):
            v.copy_(torch.randn(v.shape, generator=g) * (2.0 / v[0].numel()) ** 0.5)
    torch.save(sd, path)
    return path


_written: dict[str, str] = {}


def standin_inception(tmp_path_factory) -> str:
    """The stand-in Inception file, written once per test session."""
    if "path" not in _written:
        _written["path"] = write_standin_inception(str(tmp_path_factory.mktemp("inception") / FILE))
    return _written["path"]

