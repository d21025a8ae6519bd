"""CLIPInverter: text-driven editing of real face photos in one forward pass (Baykal et al., ACM TOG 2023).

Data flow: photo -> aligned 256x256 face -> e4e inversion w -> CLIPAdapter edit w_hat -> CLIPRemapper
-> StyleGAN2 image. This package is plain PyTorch and never imports ComfyUI.
"""
import os
import re


PACK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the pack: pyproject.toml, models/


def _read_version() -> str:
    """The version, written once: in the pack's pyproject.toml, where ComfyUI's registry reads it (the pack is
    a folder in custom_nodes, not an installed distribution, so importlib.metadata cannot be asked)."""
    pyproject = os.path.join(PACK_ROOT, "pyproject.toml")
    try:
        with open(pyproject, encoding="utf-8") as f:
            text = f.read()
    except OSError:  # the library copied out of the pack
        return "unknown"
    found = re.search(r'^\[project\][^\[]*?^version\s*=\s*"([^"]+)"', text, re.M | re.S)
    return found.group(1) if found else "unknown"


__version__ = _read_version()


def __getattr__(name):  # keep `import clipinverter_core` light; load the pipeline on first use
    if name in ("CLIPInverter", "Latent", "EditResult"):
        from . import pipeline
        return getattr(pipeline, name)
    raise AttributeError(name)
