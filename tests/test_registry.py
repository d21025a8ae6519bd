"""What the Comfy Registry and ComfyUI read of the pack: the licence pyproject names is the file beside it, and the nodes
import one pinned V3 API version (comfy_api.v0_0_2: in ComfyUI from 0.3.48, the requires-comfyui floor, to 0.8.0,
which the integration tests start), never `latest`, which moves with ComfyUI."""
import ast
import glob
import os

import pytest

from conftest import ROOT

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")


def _pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_the_licence_is_the_mit_file_pyproject_names():
    licence = _pyproject()["project"]["license"]
    assert licence == {"file": "LICENSE"}
    with open(os.path.join(ROOT, licence["file"])) as f:
        text = f.read()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text


def test_the_nodes_import_the_pinned_v3_api_and_the_floor_has_it():
    imported = set()
    for path in glob.glob(os.path.join(ROOT, "nodes", "*.py")):
        with open(path) as f:
            tree = ast.parse(f.read())
        imported |= {(os.path.basename(path), n.module) for n in ast.walk(tree)
                     if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("comfy_api")}
    assert imported and {module for _, module in imported} == {"comfy_api.v0_0_2"}, sorted(imported)
    assert _pyproject()["tool"]["comfy"]["requires-comfyui"] == ">=0.3.48"  # the first ComfyUI with v0_0_2


def test_every_model_link_of_the_example_workflows_downloads_the_file_it_names():
    """The frontend's missing-model dialog downloads a `models` entry's url into its directory: each url must be the
    file itself (its last path part is the name), never a page about it."""
    import json

    entries = []
    for path in sorted(glob.glob(os.path.join(ROOT, "example_workflows", "*.json"))):
        with open(path) as f:
            workflow = json.load(f)
        for node in workflow["nodes"]:
            entries += [(os.path.basename(path), node["type"], m) for m in node.get("properties", {}).get("models", [])]
    assert entries  # the diffusion upscale example names its checkpoint
    for name, node_type, m in entries:
        assert m["url"].startswith("https://") and m["url"].rsplit("/", 1)[1] == m["name"], (name, node_type, m)
        assert node_type != "CLIPInverterLoader", (name, "no link downloads a bundle")
