"""The pack in a real ComfyUI server (COMFYUI_PATH): it imports, /object_info shows every node with its tooltips,
the help pages are served, and every example workflow, posted in API format, runs to its images (the upscaler
example fails only for want of its diffusion checkpoint). Refine Identity -> Save Tuning writes a file that Load
Tuning lists and applies, and the real ModelPatcher's patches give the CLI's tuned pixels."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from .comfy_server import BUNDLE, EXTRA_BUNDLE, PACK_FOLDER, ROOT, load_example
from .example_specs import CHECKPOINT, EXAMPLES, NEEDS_CHECKPOINT, PHOTO_SIZE, TEST_WIDGETS, VIDEOS
from .workflow_api import set_widgets, to_api

NODE_IDS = ["CLIPInverterLoader", "CLIPInverterEncodeText", "CLIPInverterEncodeImage", "CLIPInverterInvert",
            "CLIPInverterInvertOnly", "CLIPInverterRemap", "CLIPInverterDecode", "CLIPInverterBlendLatents",
            "CLIPInverterSaveLatent", "CLIPInverterLoadLatent", "CLIPInverterAlignFace", "CLIPInverterPasteBack",
            "CLIPInverterEditMetrics", "CLIPInverterRefineIdentity", "CLIPInverterSaveTuning",
            "CLIPInverterLoadTuning"]
TUNINGS = "clipinverter_tunings"  # the output folder's subfolder Save Tuning writes to


def test_the_pack_imports_without_error(server):
    ours = [line for line in server.log().splitlines() if PACK_FOLDER in line]
    assert any("seconds:" in line for line in ours), ours  # listed among the imported custom nodes
    assert not [line for line in ours if "IMPORT FAILED" in line or "Cannot import" in line], ours
    assert "Traceback" not in server.log().split("Import times for custom nodes")[-1]


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_object_info_shows_the_node_with_tooltips(object_info, node_id):
    info = object_info[node_id]
    assert info["description"] and info["display_name"] and info["category"] == "CLIPInverter"
    for group in ("required", "optional"):
        for name, spec in info["input"].get(group, {}).items():
            assert len(spec) > 1 and spec[1].get("tooltip"), (node_id, name)
    assert len(info["output_tooltips"]) == len(info["output"]) and all(info["output_tooltips"])
    assert all(not t.startswith("LATENT") for t in info["output"])


def test_bundles_are_found_in_the_models_folder_and_through_extra_model_paths(object_info):
    options = object_info["CLIPInverterLoader"]["input"]["required"]["bundle"][1]["options"]
    assert BUNDLE in options and EXTRA_BUNDLE in options


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_help_pages_are_served(server, node_id):
    assert server.get(f"/extensions/{PACK_FOLDER}/docs/{node_id}.md").startswith("# ")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_workflow_runs(server, object_info, name):
    workflow = load_example(name)
    assert not [n["type"] for n in workflow["nodes"] if n["type"] not in object_info], "missing node types"
    prompt = set_widgets(to_api(workflow, object_info), TEST_WIDGETS.get(name, {}))
    status, reply = server.post("/prompt", {"prompt": prompt, "client_id": "tests"})
    if name in NEEDS_CHECKPOINT:
        assert status == 400, reply
        errors = reply["node_errors"]
        assert {v["class_type"] for v in errors.values()} == {"CheckpointLoaderSimple"}, errors
        details = " ".join(e["details"] for v in errors.values() for e in v["errors"])
        assert "ckpt_name" in details and CHECKPOINT in details
        return
    assert status == 200 and not reply["node_errors"], reply
    done = server.wait_for(reply["prompt_id"])
    assert done["status"]["status_str"] == "success", done["status"]
    images = [img for out in done["outputs"].values() for img in out.get("images", [])]
    expected = {"clipinverter_several_prompts": 4}.get(name, 1)
    assert len(images) == expected
    if name == "clipinverter_several_prompts":  # Edit Metrics' table, shown by Preview Any: 3 edits and the mean
        (table,) = [t for out in done["outputs"].values() for t in out.get("text", [])]
        assert table.splitlines()[0].split()[:4] == ["edit", "original", "embedding", "clip_score"]
        assert len(table.splitlines()) == 1 + 3 + 1 + 1  # header, edits, mean, "identity: skipped" (no ArcFace)
    for img in images:
        path = os.path.join(server.base, "output", img["subfolder"], img["filename"])
        if name in VIDEOS:  # every frame of the clip, its size, frame rate and sound, the face edited
            _check_video(path, os.path.join(server.base, "input", "clip.mp4"))
            continue
        assert Image.open(path).size[0] >= 256
        if name in PHOTO_SIZE:  # pasted back into the whole photo: the photo's size
            assert Image.open(path).size == PHOTO_SIZE[name]


def _check_video(path: str, source: str) -> None:
    from synthetic_clips import read_clip

    src, before = read_clip(source)
    info, after = read_clip(path)
    assert after.shape == before.shape and info["size"] == src["size"], (after.shape, before.shape)
    assert info["rate"] == src["rate"] and info["audio"] and abs(info["audio_s"] - src["audio_s"]) < 0.1, info
    corner = np.abs(after[:, :12, :12].astype(float) - before[:, :12, :12]).mean()  # outside the face: kept
    face = np.abs(after[:, 80:110, 80:110].astype(float) - before[:, 80:110, 80:110]).mean()
    assert corner < 4 and face > 10, (corner, face)  # up to two encodings; the face edited (stand-in: noise)


def test_the_text_edit_example_gives_the_pixels_of_the_cli(server, object_info, tmp_path):
    workflow = load_example("clipinverter_text_edit")
    prompt = to_api(workflow, object_info)
    text = next(n["inputs"]["text"] for n in prompt.values() if n["class_type"] == "CLIPInverterEncodeText")
    save = next(n for n in prompt.values() if n["class_type"] == "SaveImage")
    save["inputs"]["filename_prefix"] = "clipinverter/cli_parity"
    status, reply = server.post("/prompt", {"prompt": prompt, "client_id": "tests"})
    assert status == 200, reply
    done = server.wait_for(reply["prompt_id"])
    img = next(i for out in done["outputs"].values() for i in out.get("images", []))
    ours = np.asarray(Image.open(os.path.join(server.base, "output", img["subfolder"], img["filename"])))
    bundle = os.path.join(server.base, "models", "clipinverter", BUNDLE)
    cli = subprocess.run([sys.executable, "-m", "clipinverter_core", "edit", "--model", bundle, "--image",
                          os.path.join(server.base, "input", "face.png"), "--text", text, "-o",
                          str(tmp_path / "cli.png"), "--no-align", "--device", "cpu"],
                         cwd=ROOT, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    diff = np.abs(ours.astype(int) - np.asarray(Image.open(tmp_path / "cli.png")).astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), int((diff > 0).sum()))  # float rounding only


def _run(server, prompt: dict) -> dict:
    status, reply = server.post("/prompt", {"prompt": prompt, "client_id": "tests"})
    assert status == 200 and not reply["node_errors"], reply
    done = server.wait_for(reply["prompt_id"])
    assert done["status"]["status_str"] == "success", done["status"]
    return done


def _saved(server, done: dict, node_id: str) -> np.ndarray:
    (img,) = done["outputs"][node_id]["images"]
    return np.asarray(Image.open(os.path.join(server.base, "output", img["subfolder"], img["filename"]))).astype(int)


def _loader_and_face() -> dict:
    return {"loader": {"class_type": "CLIPInverterLoader",
                       "inputs": {"bundle": BUNDLE, "device": "default", "precision": "fp32"}},
            "face": {"class_type": "LoadImage", "inputs": {"image": "face.png"}}}


def _decode_and_save(model: list, latent: list, prefix: str) -> tuple[dict, dict]:
    return ({"class_type": "CLIPInverterDecode", "inputs": {"model": model, "latent": latent}},
            {"class_type": "SaveImage", "inputs": {"images": None, "filename_prefix": f"clipinverter_tests/{prefix}"}})


def _with_decodes(prompt: dict, decodes: dict) -> dict:
    """decodes: {save node id: (model, latent, prefix)}: a StyleGAN Decode (id 'd_' + save id) and its Save Image."""
    for key, (model, latent, prefix) in decodes.items():
        decode, save = _decode_and_save(model, latent, prefix)
        save["inputs"]["images"] = ["d_" + key, 0]
        prompt["d_" + key], prompt[key] = decode, save
    return prompt


def test_refine_identity_save_and_load_tuning_give_the_tuned_pixels_of_the_cli(server, tmp_path):
    """Refine Identity -> Save Tuning writes output/clipinverter_tunings/...; Load Tuning then lists it, and its
    tuned model decodes as Refine Identity's (strength 0 as the base model); the text edit with it gives the CLI's
    pixels with --tuning (the API's with_tuning: every tuned tensor in place, the fused buffers derived again)."""
    tuned, pivot, base = ["refine", 0], ["refine", 1], ["loader", 0]
    first = _with_decodes({**_loader_and_face(),
                           "refine": {"class_type": "CLIPInverterRefineIdentity",
                                      "inputs": {"model": base, "faces": ["face", 0], "mode": "photo", "steps": 2,
                                                 "lpips_stop": 0.0, "lr": 0.0, "regulariser": "default"}},
                           "save_tuning": {"class_type": "CLIPInverterSaveTuning",
                                           "inputs": {"model": tuned, "filename_prefix": "tests/person"}}},
                          {"tuned": (tuned, pivot, "tuned_pivot"), "base": (base, pivot, "base_pivot")})
    done = _run(server, first)
    (name,) = done["outputs"]["save_tuning"]["text"]
    path = os.path.join(server.base, "output", TUNINGS, name)
    assert name.startswith("tests/person_") and name.endswith(".safetensors") and os.path.isfile(path), name
    tuned_px, base_px = _saved(server, done, "tuned"), _saved(server, done, "base")
    assert np.abs(tuned_px - base_px).mean() > 1  # the tuning changed the generator; the base model kept its own

    options = server.get("/object_info/CLIPInverterLoadTuning")["CLIPInverterLoadTuning"]["input"]["required"][
        "tuning"][1]["options"]
    assert name in options, options

    text = "this person has blonde hair"
    loaded, zero = ["load", 0], ["load_zero", 0]
    second = _with_decodes({**_loader_and_face(),
                            "load": {"class_type": "CLIPInverterLoadTuning",
                                     "inputs": {"model": base, "tuning": name, "strength": 1.0}},
                            "load_zero": {"class_type": "CLIPInverterLoadTuning",
                                          "inputs": {"model": base, "tuning": name, "strength": 0.0}},
                            "pivot": {"class_type": "CLIPInverterInvertOnly", "inputs": {"model": base,
                                                                                          "image": ["face", 0]}},
                            "text": {"class_type": "CLIPInverterEncodeText", "inputs": {"model": base, "text": text}},
                            "invert": {"class_type": "CLIPInverterInvert",
                                       "inputs": {"model": loaded, "image": ["face", 0], "embedding": ["text", 0],
                                                  "strength": 1.0, "coarse": True, "medium": True, "fine": True}},
                            "remap": {"class_type": "CLIPInverterRemap",
                                      "inputs": {"model": loaded, "latent": ["invert", 0], "embedding": ["text", 0],
                                                 "strength": 1.0}}},
                           {"loaded": (loaded, ["pivot", 0], "loaded_pivot"),
                            "zero": (zero, ["pivot", 0], "zero_pivot"),
                            "edit": (loaded, ["remap", 0], "tuned_edit")})
    done = _run(server, second)
    assert np.abs(_saved(server, done, "loaded") - tuned_px).max() <= 1   # the saved tuning is the tuned model
    assert np.abs(_saved(server, done, "zero") - base_px).max() <= 1      # strength 0: the base weights

    bundle = os.path.join(server.base, "models", "clipinverter", BUNDLE)
    cli = subprocess.run([sys.executable, "-m", "clipinverter_core", "edit", "--model", bundle, "--image",
                          os.path.join(server.base, "input", "face.png"), "--text", text, "-o",
                          str(tmp_path / "cli.png"), "--no-align", "--device", "cpu", "--tuning", path],
                         cwd=ROOT, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    diff = np.abs(_saved(server, done, "edit") - np.asarray(Image.open(tmp_path / "cli.png")).astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), int((diff > 0).sum()))  # float rounding only


def test_a_missing_bundle_is_a_clear_error(server, object_info):
    prompt = to_api(load_example("clipinverter_text_edit"), object_info)
    loader = next(n for n in prompt.values() if n["class_type"] == "CLIPInverterLoader")
    loader["inputs"]["bundle"] = "not_there.safetensors"
    status, reply = server.post("/prompt", {"prompt": prompt, "client_id": "tests"})
    assert status == 400
    details = " ".join(e["details"] for v in reply["node_errors"].values() for e in v["errors"])
    assert "not_there.safetensors" in details and "clipinverter" in details and "drive.google.com" in details


def test_the_cancel_button_stops_a_batch(server, object_info):
    import time

    prompt = to_api(load_example("clipinverter_several_prompts"), object_info)
    text = next(n for n in prompt.values() if n["class_type"] == "CLIPInverterEncodeText")
    text["inputs"]["text"] = "\n".join(f"this person has hair of colour number {k}" for k in range(40))
    status, reply = server.post("/prompt", {"prompt": prompt, "client_id": "tests"})
    assert status == 200, reply
    deadline = time.time() + 120
    while not server.get("/queue")["queue_running"]:
        assert time.time() < deadline, "the prompt never started"
        time.sleep(0.2)
    time.sleep(2)
    server.post("/interrupt", {})
    done = server.wait_for(reply["prompt_id"], timeout_s=120)
    interrupted = [m[1] for m in done["status"]["messages"] if m[0] == "execution_interrupted"]
    assert interrupted, done["status"]["messages"]
    assert interrupted[0]["node_type"].startswith("CLIPInverter"), interrupted  # stopped inside our batch loop
