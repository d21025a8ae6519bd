"""Peak memory of a video edit against its length: N frames at SIDE x SIDE (or --size W H) through (a) `edit-video`
(streamed with PyAV), (b) the node chain of the frames example (Align Face with tracking -> Encode Text -> Invert ->
Remap -> Decode -> Paste Back) and (c) the Edit Video node (VIDEO -> VIDEO, streamed), each N in a fresh process.

    python bench/video_memory.py --model BUNDLE [--frames 100 1000] [--side 512 | --size 1920 1080] \
        [--modes cli nodes node] [--comfyui COMFYUI_PATH]

(b) and (c) run the pack's nodes with the real ComfyUI modules of COMFYUI_PATH (its model management, no server),
so run them with ComfyUI's Python. ComfyUI keeps every node's output tensors until the prompt ends, so they grow with
N whatever a node does; what the nodes add beyond them must not. The report prints, per run: peak RSS, the RSS
before the frames existed (imports + networks), the bytes of the IMAGE/MASK/latent tensors the graph holds
(input frames included), and the rest: peak - before - tensors, the nodes' own working memory.

The clip: scikit-image's astronaut moved and turned along a smooth path (tests/synthetic_clips.py), H.264.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
TEXT = "this person has blonde hair"
FPS = 25


def _photo_and_centre():
    import torch
    from skimage import data

    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
    return photo, (220.0, 130.0)  # the astronaut's face centre, in pixels of the 512x512 photo


def frames(n: int, side: int, width: int | None = None):
    """(side, width or side, 3) float32 frames in [0, 1], one at a time: the photo at side / 512 of its size."""
    import numpy as np
    import torch
    from kornia.geometry.transform import warp_affine
    from synthetic_clips import path_matrix

    photo, centre = _photo_and_centre()
    width = width or side
    for t in range(n):
        m = path_matrix(t, max(n, 60), np.array(centre), side, side / 512, shift=0.04, turn_deg=5.0)
        m[0, 2] += (width - side) / 2  # the path centred in a wider frame
        frame = warp_affine(photo - 0.5, torch.from_numpy(m[None, :2]).float(), (side, width), mode="bilinear",
                            padding_mode="zeros", align_corners=True)[0] + 0.5
        yield frame.clamp(0, 1).permute(1, 2, 0)


def write_clip(path: str, n: int, side: int, width: int | None = None) -> None:
    import av
    import numpy as np

    with av.open(path, "w") as out:
        v = out.add_stream("libx264", rate=FPS)
        v.width, v.height = width or side, side
        v.pix_fmt, v.options = "yuv420p", {"crf": "18"}
        for t, f in enumerate(frames(n, side, width)):
            frame = av.VideoFrame.from_ndarray((f.numpy() * 255).round().astype(np.uint8), "rgb24")
            frame.pts = t
            out.mux(v.encode(frame))
        out.mux(v.encode())


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child_cli(a) -> dict:
    from clipinverter_core.__main__ import main

    before = rss_bytes()
    out = os.path.join(os.path.dirname(a.clip), "out.mp4")
    code = main(["edit-video", "--model", a.model, "--input", a.clip, "-o", out, "--text", TEXT, "--device", "cpu",
                 "--quiet"])
    assert code in (0, None), code
    return {"peak": peak_bytes(), "before": before, "tensors": 0}


def _comfy_pack(a):
    """The pack imported as ComfyUI imports it, on ComfyUI's real modules (`--cpu`), the bundle's folder registered."""
    import importlib.util

    sys.path.insert(0, a.comfyui)
    from comfy.cli_args import args

    args.cpu = True  # as `main.py --cpu`: set before comfy.model_management is imported
    import folder_paths  # ComfyUI's, real

    folder_paths.add_model_folder_path("clipinverter", os.path.dirname(os.path.abspath(a.model)))
    spec = importlib.util.spec_from_file_location("clipinverter_pack", os.path.join(ROOT, "__init__.py"),
                                                  submodule_search_locations=[ROOT])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["clipinverter_pack"] = pack
    spec.loader.exec_module(pack)
    return pack


def child_node(a) -> dict:
    """The Edit Video node on the clip file: before = RSS with the model loaded and the text encoded."""
    _comfy_pack(a)
    from comfy_api.v0_0_2 import InputImpl
    from clipinverter_pack.nodes import encode, loader, video

    model = loader.LoadInverter.execute(os.path.basename(a.model), "cpu", "fp32").result[0]
    emb = encode.EncodeText.execute(model, TEXT).result[0]
    before = rss_bytes()
    out = video.EditVideo.execute(model, InputImpl.VideoFromFile(a.clip), emb, 1.0, 1.0, 0, "largest first", "auto",
                                  3.0, 0.1, 1.0).result[0]
    assert os.path.getsize(out.get_stream_source()) > 0
    return {"peak": peak_bytes(), "before": before, "tensors": 0}


def child_nodes(a) -> dict:
    import torch

    _comfy_pack(a)
    from clipinverter_pack.nodes import align, decode, edit, encode, loader

    model = loader.LoadInverter.execute(os.path.basename(a.model), "cpu", "fp32").result[0]
    before = rss_bytes()
    clip = torch.empty((a.frames, a.side, a.side, 3))  # what LoadVideo -> GetVideoComponents hands on
    for t, f in enumerate(frames(a.frames, a.side)):
        clip[t] = f
    held = [clip]
    crops, alignment = align.AlignFace.execute(clip, 0, 256, "passthrough", tracking="on").result
    emb = encode.EncodeText.execute(model, TEXT).result[0]
    lat = edit.InvertEdit.execute(model, crops, emb, 1.0, True, True, True).result[0]
    lat2 = edit.Remap.execute(model, lat, emb, 1.0).result[0]
    faces = decode.Decode.execute(model, lat2).result[0]
    pasted, mask = align.PasteBack.execute(clip, faces, alignment, 0.1).result
    held += [crops, lat.w, lat2.w, faces, pasted, mask] + [x for x in (lat.conv, lat2.conv) if x is not None]
    return {"peak": peak_bytes(), "before": before, "tensors": sum(t.numel() * t.element_size() for t in held)}


def run_child(mode: str, n: int, a, clip: str) -> dict:
    python = a.comfyui_python if mode in ("nodes", "node") else sys.executable
    cmd = [python, os.path.abspath(__file__), "--child", mode, "--model", a.model, "--frames", str(n),
           "--side", str(a.side), "--clip", clip, "--comfyui", a.comfyui or ""]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(a.threads)})
    if r.returncode != 0:
        raise SystemExit(f"{mode} {n} frames failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--frames", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--side", type=int, default=512)
    p.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), help="frames of W x H (cli and node modes)")
    p.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH"), help="ComfyUI source tree (for --modes nodes)")
    p.add_argument("--comfyui-python", default=os.environ.get("COMFYUI_PYTHON", sys.executable))
    p.add_argument("--modes", nargs="+", default=["cli", "nodes"], choices=["cli", "nodes", "node"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", choices=["cli", "nodes", "node"], help=argparse.SUPPRESS)
    p.add_argument("--clip", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        a.frames = a.frames[0]
        print(json.dumps({"cli": child_cli, "nodes": child_nodes, "node": child_node}[a.child](a)))
        return
    if a.size:
        if "nodes" in a.modes:
            p.error("--size: the nodes mode makes square frames (--side)")
        width, a.side = a.size
    else:
        width = a.side
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {a.threads} threads; "
          f"frames {width}x{a.side}; bundle {os.path.basename(a.model)}")
    print(f"{'mode':6} {'frames':>6} {'peak RSS':>9} {'before':>8} {'tensors':>8} {'rest':>8}  (GB)")
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.frames:
            clip = os.path.join(tmp, f"clip{n}.mp4")
            if {"cli", "node"} & set(a.modes):
                write_clip(clip, n, a.side, width)
            for mode in a.modes:
                r = run_child(mode, n, a, clip)
                rest = r["peak"] - r["before"] - r["tensors"]
                print(f"{mode:6} {n:6d} {r['peak'] / 1e9:9.2f} {r['before'] / 1e9:8.2f} {r['tensors'] / 1e9:8.2f} "
                      f"{rest / 1e9:8.2f}", flush=True)


if __name__ == "__main__":
    main()
