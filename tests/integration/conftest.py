"""A real ComfyUI server with this pack, for the integration and browser tests.

Set COMFYUI_PATH to a ComfyUI source tree (e.g. pollockjj/ComfyUI, 0.8.0) and, when ComfyUI's Python is not
the one running pytest, COMFYUI_PYTHON to it. Without COMFYUI_PATH every test here skips, saying so.
The server runs on 127.0.0.1 with a temporary base directory: this checkout linked into custom_nodes/, a
stand-in bundle in models/clipinverter (and under another name in a folder only extra_model_paths.yaml names), and the sample face in input/.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
SKIP_REASON = ("COMFYUI_PATH is not set: these tests start a real ComfyUI server from that source tree "
               "(see README.md, 'Integration tests')")
PACK_FOLDER = "comfyui-clipinverter"
BUNDLE = "clipinverter_faces.safetensors"  # in models/clipinverter, as users put it
EXTRA_BUNDLE = "found_through_extra_model_paths.safetensors"  # in a folder only extra_model_paths.yaml names
START_TIMEOUT_S = 240


def pytest_collection_modifyitems(config, items):
    if COMFYUI_PATH:
        return
    for item in items:
        if str(item.fspath).startswith(HERE):
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


class Server:
    def __init__(self, url, base, log_path, proc):
        self.url, self.base, self.log_path, self.proc = url, base, log_path, proc

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            body = r.read()
            return json.loads(body) if r.headers.get_content_type() == "application/json" else body.decode()

    def post(self, path: str, payload: dict) -> tuple[int, dict]:
        req = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def wait_for(self, prompt_id: str, timeout_s: float = 300) -> dict:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            hist = self.get(f"/history/{prompt_id}")
            if prompt_id in hist and hist[prompt_id].get("status", {}).get("completed") is not None:
                return hist[prompt_id]
            if prompt_id in hist and hist[prompt_id].get("status", {}).get("status_str") == "error":
                return hist[prompt_id]
            if self.proc.poll() is not None:
                raise RuntimeError("the ComfyUI server died:\n" + self.log()[-4000:])
            time.sleep(0.5)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout_s} s:\n" + self.log()[-3000:])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_sample_images(folder: str) -> None:
    """face.png: the sample aligned face (256x256, as scripts/sample_face.py); reference.png: another picture."""
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).crop((125, 20, 325, 220)).resize((256, 256), Image.LANCZOS).save(
        os.path.join(folder, "face.png"))
    Image.fromarray(data.chelsea()).save(os.path.join(folder, "reference.png"))


@pytest.fixture(scope="session")
def server(tmp_path_factory, standin256):
    if not COMFYUI_PATH:
        pytest.skip(SKIP_REASON)
    base = tmp_path_factory.mktemp("comfyui_base")
    for d in ("custom_nodes", "input", "output", "models/clipinverter", "extra_models/clipinverter"):
        (base / d).mkdir(parents=True, exist_ok=True)
    os.symlink(ROOT, base / "custom_nodes" / PACK_FOLDER)
    bundle = os.path.abspath(os.environ.get("CLIPINVERTER_TEST_BUNDLE", standin256))
    os.symlink(bundle, base / "models" / "clipinverter" / BUNDLE)
    os.symlink(bundle, base / "extra_models" / "clipinverter" / EXTRA_BUNDLE)
    yaml = base / "extra_model_paths.yaml"
    yaml.write_text(f"clipinverter_tests:\n  base_path: {base / 'extra_models'}\n  clipinverter: clipinverter\n")
    write_sample_images(str(base / "input"))
    port = _free_port()
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


def load_example(name: str) -> dict:
    with open(os.path.join(ROOT, "example_workflows", f"{name}.json")) as f:
        return json.load(f)
