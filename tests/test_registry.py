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


def test_pyproject_follows_the_registry_specification():
    import re

    from PIL import Image

    project, comfy = _pyproject()["project"], _pyproject()["tool"]["comfy"]
    name = project["name"]
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*([-_.][A-Za-z0-9]+)*", name) and len(name) < 100
    assert "comfyui" not in name.lower()  # the spec's advice: the node id without "ComfyUI"
    assert comfy["PublisherId"] and comfy["DisplayName"] == "CLIPInverter"
    assert {"Environment :: GPU :: NVIDIA CUDA", "Environment :: GPU :: Apple Metal"} <= set(project["classifiers"])
    # (that the Registry accepts every classifier: `comfy node validate` below warns otherwise)
    icon = comfy["Icon"]
    assert icon.startswith("https://raw.githubusercontent.com/") and icon.endswith("/main/docs/icon.png")
    with Image.open(os.path.join(ROOT, "docs", "icon.png")) as img:
        assert img.width <= 800 and img.height <= 400  # the spec's largest icon
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        assert "PLACEHOLDER for whoever publishes" in f.read()


def test_the_publish_workflow_is_the_registry_s_action_on_pyproject_changes():
    import yaml

    with open(os.path.join(ROOT, ".github", "workflows", "publish.yml")) as f:
        workflow = yaml.safe_load(f)
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "workflow_dispatch" in triggers and triggers["push"]["paths"] == ["pyproject.toml"]
    steps = workflow["jobs"]["publish-node"]["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@")
    assert steps[-1]["uses"] == "Comfy-Org/publish-node-action@v1"
    assert steps[-1]["with"]["personal_access_token"] == "${{ secrets.REGISTRY_ACCESS_TOKEN }}"


def test_the_registry_tool_validates_the_pack_and_packs_no_tests_benchmarks_or_weights(tmp_path):
    """comfy-cli (requirements-dev.txt), in a clone of the committed tree as the Registry sees it."""
    import shutil
    import subprocess
    import sys
    import zipfile

    comfy = shutil.which("comfy", path=os.path.dirname(sys.executable)) or shutil.which("comfy")
    assert comfy, "comfy-cli is in requirements-dev.txt; run scripts/test.sh"
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", ROOT, str(clone)], check=True)
    run = lambda *a: subprocess.run([comfy, "--skip-prompt", "--no-enable-telemetry", "node", *a], cwd=clone,  # noqa: E731
                                    capture_output=True, text=True, timeout=300)
    r = run("validate")
    said = r.stdout + r.stderr
    assert r.returncode == 0 and "All validation checks passed" in said and "warning" not in said.lower(), said
    r = run("pack")
    assert r.returncode == 0 and (clone / "node.zip").is_file(), r.stdout + r.stderr
    names = zipfile.ZipFile(clone / "node.zip").namelist()
    assert {"LICENSE", "README.md", "pyproject.toml", "requirements.txt", "__init__.py"} <= set(names)
    assert any(n.startswith("example_workflows/") and n.endswith(".json") for n in names)
    assert any(n.startswith("web/") for n in names) and any(n.startswith("nodes/") for n in names)
    assert not [n for n in names if n.split("/")[0] in ("tests", "bench", "scripts", ".ci", ".github")]
    assert not [n for n in names if n.endswith((".safetensors", ".pt", ".pth", ".ckpt", ".bin"))]
