"""A real ComfyUI server with this pack, for the integration and browser tests.

Set COMFYUI_PATH to a ComfyUI source tree (e.g. pollockjj/ComfyUI, 0.8.0) and, when ComfyUI's Python is not
the one running pytest, COMFYUI_PYTHON to it. Without COMFYUI_PATH every test here skips, saying so.
The server runs on 127.0.0.1 with a temporary base directory: this checkout linked into custom_nodes/, a
stand-in bundle in models/clipinverter (and under another name in a folder only extra_model_paths.yaml names),
Refine Identity's LPIPS AlexNet (a stand-in) beside it, and the sample images in input/.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error

import pytest

from .comfy_server import (ALEXNET, BUNDLE, COMFYUI_PATH, EXTRA_BUNDLE, HERE, PACK_FOLDER, ROOT, SKIP_REASON, Server,
                           free_port, write_alexnet_standin, write_sample_images)

START_TIMEOUT_S = 240


def pytest_collection_modifyitems(config, items):
    if COMFYUI_PATH:
        return
    for item in items:
        if str(item.fspath).startswith(HERE):
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.fixture(scope="session")
def server(tmp_path_factory, standin256, lossnet_factory):
    if not COMFYUI_PATH:
        pytest.skip(SKIP_REASON)
    base = tmp_path_factory.mktemp("comfyui_base")
    for d in ("custom_nodes", "input", "output", "models/clipinverter", "extra_models/clipinverter"):
        (base / d).mkdir(parents=True, exist_ok=True)
    os.symlink(ROOT, base / "custom_nodes" / PACK_FOLDER)
    bundle = os.path.abspath(os.environ.get("CLIPINVERTER_TEST_BUNDLE", standin256))
    os.symlink(bundle, base / "models" / "clipinverter" / BUNDLE)
    os.symlink(bundle, base / "extra_models" / "clipinverter" / EXTRA_BUNDLE)
    try:  # Refine Identity's LPIPS AlexNet: the test kit's stand-in, else a seeded random one
        os.symlink(lossnet_factory(0)["alexnet"], base / "models" / "clipinverter" / ALEXNET)
    except pytest.skip.Exception:
        write_alexnet_standin(str(base / "models" / "clipinverter" / ALEXNET))
    yaml = base / "extra_model_paths.yaml"
    yaml.write_text(f"clipinverter_tests:\n  base_path: {base / 'extra_models'}\n  clipinverter: clipinverter\n")
    write_sample_images(str(base / "input"))
    port = free_port()
    log_path = str(base / "server.log")
    cmd = [os.environ.get("COMFYUI_PYTHON", sys.executable), "main.py", "--cpu", "--listen", "127.0.0.1",
           "--port", str(port), "--base-directory", str(base), "--extra-model-paths-config", str(yaml),
           "--disable-auto-launch"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=COMFYUI_PATH, stdout=log, stderr=subprocess.STDOUT)
    srv = Server(f"http://127.0.0.1:{port}", base, log_path, proc)
    try:
        deadline = time.time() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail("ComfyUI exited at start:\n" + srv.log()[-4000:])
            try:
                srv.get("/system_stats")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.time() > deadline:
                    pytest.fail(f"ComfyUI did not answer in {START_TIMEOUT_S} s:\n" + srv.log()[-4000:])
                time.sleep(1)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def object_info(server):
    return server.get("/object_info")
