"""Helpers of the integration tests: the running server's handle, the sample images, the example files.
(conftest.py holds the fixtures that start the server.)"""
from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
SKIP_REASON = ("COMFYUI_PATH is not set: these tests start a real ComfyUI server from that source tree "
               "(see README.md, 'Integration tests')")
PACK_FOLDER = "comfyui-clipinverter"
BUNDLE = "clipinverter_faces.safetensors"  # in models/clipinverter, as users put it
EXTRA_BUNDLE = "found_through_extra_model_paths.safetensors"  # in a folder only extra_model_paths.yaml names
ALEXNET = "alexnet-owt-7be5be79.pth"  # Refine Identity's LPIPS network, in models/clipinverter as users put it


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
                body = r.read()
                return r.status, (json.loads(body) if body else {})
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLIP_FRAMES, CLIP_FPS = 12, 10  # clip.mp4: the astronaut moving, 192x192, with a tone as its sound


def write_sample_images(folder: str) -> None:
    """face.png: the sample aligned face (256x256, as scripts/sample_face.py); reference.png: another picture;
    photo.png: a whole photo with a face (the astronaut, 512x512), for Align Face; clip.mp4: a short video of
    the astronaut moving along a smooth path (tests/synthetic_clips.py), for the video example."""
    from PIL import Image
    from skimage import data
    from synthetic_clips import moving_astronaut, write_clip

    write_clip(os.path.join(folder, "clip.mp4"), moving_astronaut(CLIP_FRAMES), CLIP_FPS)

    Image.fromarray(data.astronaut()).crop((125, 20, 325, 220)).resize((256, 256), Image.LANCZOS).save(
        os.path.join(folder, "face.png"))
    Image.fromarray(data.chelsea()).save(os.path.join(folder, "reference.png"))
    Image.fromarray(data.astronaut()).save(os.path.join(folder, "photo.png"))


def write_alexnet_standin(path: str) -> None:
    """A stand-in of torchvision's AlexNet (random features, seeded) where the parity kit's is not at hand: LPIPS
    reads only its `features.*`."""
    import torch
    import torchvision

    torch.manual_seed(0)
    features = torchvision.models.alexnet(weights=None).features
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)


def load_example(name: str) -> dict:
    with open(os.path.join(ROOT, "example_workflows", f"{name}.json")) as f:
        return json.load(f)
