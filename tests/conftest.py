"""Shared fixtures: the parity kit (official-format stand-in weights + golden outputs of the official code).

The kit lives in ../shared/parity beside the checkout (override with CLIPINVERTER_PARITY). Without it the
parity tests skip, unless CLIPINVERTER_REQUIRE_PARITY=1 (CI sets it), which turns the skip into a failure.
"""
from __future__ import annotations

import importlib.util
import os
import shutil

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARITY = os.environ.get("CLIPINVERTER_PARITY", os.path.join(ROOT, "..", "shared", "parity"))

torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))


def rel_l2(ours, ref) -> float:
    ours = np.asarray(torch.as_tensor(ours).detach().cpu().double())
    ref = np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


def skip_unless_present(present: bool, msg: str, required_by: str) -> None:
    """Skips with `msg` when something a test needs is absent, or fails when the environment variable
    `required_by` is 1 (CI sets them: there, what is missing is a broken setup, not a reason to skip)."""
    if present:
        return
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{msg} ({required_by}=1)")
    pytest.skip(msg)


def need_parity_file(name: str = "recipe.py") -> str:
    """The path of a file of the parity kit; skips without the kit, fails in CI (CLIPINVERTER_REQUIRE_PARITY)."""
    path = os.path.join(PARITY, name)
    skip_unless_present(os.path.isfile(path), f"parity kit not found at {PARITY} (set CLIPINVERTER_PARITY)",
                        "CLIPINVERTER_REQUIRE_PARITY")
    return path


# --------------------------------------------------------------------------- measured figures in CI's log
_figures: dict[str, list[str]] = {}


def report_figure(section: str, text: str) -> None:
    """Keeps a measured figure (an error against the reference, ...) for the summary at the end of the run:
    CI runs pytest without -s, and this summary is what its log shows of the measurements."""
    _figures.setdefault(section, []).append(text)


def pytest_terminal_summary(terminalreporter):
    for section, lines in _figures.items():
        terminalreporter.write_sep("-", f"measured: {section}")
        for line in lines:
            terminalreporter.write_line(line)


def _need_kit():
    need_parity_file()


def _recipe():
    spec = importlib.util.spec_from_file_location("parity_recipe", os.path.join(PARITY, "recipe.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Kit:
    """Official-format files written by the recipe, our bundle converted from them, and the golden arrays."""

    def __init__(self, folder: str, size: int, seed: int = 0):
        from clipinverter_core.convert import convert

        self.size, self.folder = size, folder
        self.bundle = os.path.join(folder, "bundle.safetensors")
        names = {"e4e": "e4e_ffhq_encode.pt", "clipinverter": "pretrained_faces.pt",
                 "stylegan2": "stylegan2-ffhq-config-f.pt", "clip": "ViT-B-32.pt"}
        self.files = {k: os.path.join(folder, v) for k, v in names.items()}
        if not os.path.isfile(self.bundle):  # a kept kit (CLIPINVERTER_KIT_CACHE) is reused as it is
            self.files = _recipe().write_checkpoints(folder, seed=seed, size=size)
            convert(self.files["clipinverter"], self.files["e4e"], self.files["clip"], self.bundle,
                    log=lambda *_: None)
        self.golden = dict(np.load(os.path.join(PARITY, f"golden_{size}.npz")))


_kits: dict = {}


@pytest.fixture(scope="session")
def kit_factory(tmp_path_factory):
    """kit_factory(size) -> Kit, built once per size per session (about 3 GB of disk each). With
    CLIPINVERTER_KIT_CACHE=DIR the kits are kept in DIR and reused by later runs (a developer's speed-up)."""
    cache = os.environ.get("CLIPINVERTER_KIT_CACHE")

    def get(size: int) -> Kit:
        _need_kit()
        if size not in _kits:
            folder = os.path.join(cache, f"kit{size}") if cache else str(tmp_path_factory.mktemp(f"kit{size}"))
            os.makedirs(folder, exist_ok=True)
            _kits[size] = Kit(folder, size)
        return _kits[size]
    yield get
    if not cache:
        for k in _kits.values():
            shutil.rmtree(k.folder, ignore_errors=True)
    _kits.clear()


@pytest.fixture(scope="session")
def kit256(kit_factory):
    return kit_factory(256)


@pytest.fixture(scope="session")
def standin256(tmp_path_factory):
    """A bundle of stand-in random weights at StyleGAN size 256 (kept in CLIPINVERTER_KIT_CACHE when set)."""
    from clipinverter_core.standin import make_standin_bundle

    cache = os.environ.get("CLIPINVERTER_KIT_CACHE")
    path = os.path.join(cache, "standin256.safetensors") if cache else \
        str(tmp_path_factory.mktemp("standin") / "standin256.safetensors")
    if not os.path.isfile(path):
        make_standin_bundle(path, 256, 0)
    return path
