"""The ComfyUI nodes, without ComfyUI: its modules are stand-ins (comfy_stubs.py) that record what the nodes ask.

What PRODUCT.md asks of the nodes: the ids of its table, pack-prefixed types, tooltips everywhere, the model
folder, model management, progress and cancel, batch broadcasting, and the same pixels as the CLI.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import comfy_stubs
from comfy_stubs import RECORD, ROOT

PRODUCT_IDS = {"CLIPInverterLoader", "CLIPInverterEncodeText", "CLIPInverterEncodeImage", "CLIPInverterInvert",
               "CLIPInverterRemap", "CLIPInverterDecode", "CLIPInverterAlignFace", "CLIPInverterPasteBack"}
EXTRA_IDS = {"CLIPInverterInvertOnly", "CLIPInverterBlendLatents", "CLIPInverterSaveLatent", "CLIPInverterLoadLatent",
             "CLIPInverterEditMetrics", "CLIPInverterRefineIdentity", "CLIPInverterSaveTuning", "CLIPInverterLoadTuning",
             "CLIPInverterEditVideo", "CLIPInverterClipMetrics"}
BUNDLE = "clipinverter_faces.safetensors"
PROMPT = "this person has blonde hair"


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    """(pack, folder_paths stand-in, ComfyUI base folder) with the stand-ins installed."""
    base = tmp_path_factory.mktemp("comfyui")
    with comfy_stubs.installed(str(base)) as fp:
        fp.add_model_folder_path("clipinverter", str(base / "extra_models"))  # as extra_model_paths.yaml would
        pack = comfy_stubs.load_pack()
        yield pack, fp, base


@pytest.fixture(autouse=True)
def _fresh_record():
    RECORD.reset()
    yield
    RECORD.reset()  # module fixtures made by the next test must not inherit this one's cancel or memory


@pytest.fixture(scope="module")
def nodes(comfy):
    pack = comfy[0]
    return {n.define_schema().node_id: n for n in pack.nodes.NODES}


@pytest.fixture(scope="module")
def face(comfy):
    """The sample face at 256x256 as ComfyUI's Load Image gives it, and the PNG the CLI reads."""
    from skimage import data

    _, _, base = comfy
    img = Image.fromarray(data.astronaut()).crop((125, 20, 325, 220)).resize((256, 256), Image.LANCZOS)
    path = str(base / "input" / "face.png")
    img.save(path)
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(np.float32) / 255.0  # LoadImage
    return path, torch.from_numpy(pixels)[None]


@pytest.fixture(scope="module")
def model(comfy, nodes, standin256):
    _, _, base = comfy
    folder = base / "models" / "clipinverter"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / BUNDLE).exists():
        os.symlink(standin256, folder / BUNDLE)
    return nodes["CLIPInverterLoader"].execute(BUNDLE, "default", "fp32")[0]


def run(nodes, node_id, *args):
    return nodes[node_id].execute(*args)[0]


@pytest.fixture(scope="module")
def single(nodes, model, face):
    """One face, one prompt, through every step once (the tests below reuse it rather than recompute)."""
    t = run(nodes, "CLIPInverterEncodeText", model, PROMPT)
    plain = run(nodes, "CLIPInverterInvertOnly", model, face[1])
    edited = run(nodes, "CLIPInverterInvert", model, face[1], t, 1.0, True, True, True)
    remapped = run(nodes, "CLIPInverterRemap", model, edited, t, 1.0)
    return {"t": t, "plain": plain, "edited": edited, "remapped": remapped,
            "pixels": run(nodes, "CLIPInverterDecode", model, remapped)}


# --- the node table --------------------------------------------------------------------------------------------
def test_the_pack_imports_without_comfyui_and_does_nothing():
    code = ("import importlib.util, sys; "
            f"s = importlib.util.spec_from_file_location('p', {os.path.join(ROOT, '__init__.py')!r}, "
            f"submodule_search_locations=[{ROOT!r}]); m = importlib.util.module_from_spec(s); "
            "sys.modules['p'] = m; s.loader.exec_module(m); assert callable(m.comfy_entrypoint); "
            "assert not any(k.startswith(('comfy', 'folder_paths', 'torch')) for k in sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_extension_lists_every_node_of_the_product_table(comfy, nodes):
    import asyncio

    pack = comfy[0]
    ext = asyncio.run(pack.comfy_entrypoint())
    listed = {n.define_schema().node_id for n in asyncio.run(ext.get_node_list())}
    assert listed == PRODUCT_IDS | EXTRA_IDS


def test_every_node_input_and_output_has_a_tooltip_and_a_help_page(nodes):
    for node_id, node in nodes.items():
        s = node.define_schema()
        assert s.description and s.display_name and s.category == "CLIPInverter", node_id
        for port in s.inputs + s.outputs:
            assert port.tooltip, (node_id, port.id, port.display_name)
        assert os.path.isfile(os.path.join(ROOT, "web", "docs", f"{node_id}.md")), node_id


def test_types_are_pack_prefixed_never_core_latent(nodes):
    for node_id, node in nodes.items():
        s = node.define_schema()
        for port in s.inputs + s.outputs:
            assert port.io_type != "LATENT", (node_id, port.id)
            if port.io_type not in ("IMAGE", "MASK", "VIDEO", "FLOAT", "INT", "BOOLEAN", "STRING", "COMBO"):
                assert port.io_type.startswith("CLIPINVERTER_"), (node_id, port.io_type)


# --- model folder and loading ------------------------------------------------------------------------------------
def test_model_folder_is_registered_beside_extra_model_paths(comfy):
    _, fp, base = comfy
    paths, exts = fp.folder_names_and_paths["clipinverter"]
    assert paths[0] == os.path.join(fp.models_dir, "clipinverter")
    assert str(base / "extra_models") in paths and ".safetensors" in exts


def test_a_missing_bundle_names_the_folder_the_file_and_the_sources(nodes, comfy):
    _, fp, _ = comfy
    loader = nodes["CLIPInverterLoader"]
    msg = loader.validate_inputs("nowhere.safetensors")
    assert isinstance(msg, str)
    assert "nowhere.safetensors" in msg and os.path.join(fp.models_dir, "clipinverter") in msg
    assert "drive.google.com" in msg and "convert" in msg
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        loader.execute("nowhere.safetensors", "default", "fp32")


@pytest.mark.parametrize("name, message", [("notes.safetensors", "not a readable safetensors file"),
                                           ("foreign.safetensors", "not a CLIPInverter bundle")])
def test_a_file_in_the_model_folder_that_is_not_a_bundle_is_a_clear_error(nodes, comfy, name, message):
    from safetensors.torch import save_file

    _, fp, _ = comfy
    folder = os.path.join(fp.models_dir, "clipinverter")
    os.makedirs(folder, exist_ok=True)
    if name == "notes.safetensors":
        with open(os.path.join(folder, name), "w") as f:
            f.write("these are my notes, not weights")
    else:  # a real safetensors file of another model
        save_file({"weight": torch.zeros(2)}, os.path.join(folder, name))
    with pytest.raises(Exception, match=message) as e:
        nodes["CLIPInverterLoader"].execute(name, "default", "fp32")
    assert "\n" not in str(e.value) and name in str(e.value)


def test_the_loader_hands_the_networks_to_comfyui_model_management(model, nodes):
    assert model.patcher.model is model.modules and model.patcher.load_device == torch.device("cpu")
    n_params = sum(p.numel() for p in model.modules.parameters())
    assert n_params > 0 and model.modules.clip is not None
    run(nodes, "CLIPInverterEncodeText", model, PROMPT)
    assert RECORD.loads and RECORD.loads[0][0] == [model.patcher] and RECORD.loads[0][2] is True


def test_the_loader_keeps_its_own_copy_when_the_file_is_overwritten_in_place(comfy, nodes, standin256, face):
    """A long-lived server whose bundle is overwritten in place (`cp new old`, an editor, a sync tool) keeps editing
    with what it loaded: the loader copies the weights off the file (mmap=False); a mapped model would read zeros."""
    import shutil

    _, _, base = comfy
    folder = base / "models" / "clipinverter"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "overwritten.safetensors"
    shutil.copyfile(standin256, path)  # a file of the test's own: its bytes get zeroed below
    loaded = nodes["CLIPInverterLoader"].execute(path.name, "default", "fp32")[0]
    t = run(nodes, "CLIPInverterEncodeText", loaded, PROMPT)
    edit = lambda: run(nodes, "CLIPInverterDecode", loaded,  # noqa: E731
                       run(nodes, "CLIPInverterInvert", loaded, face[1], t, 1.0, True, True, True))
    before = edit()
    with open(path, "r+b") as f:  # every tensor's bytes zeroed, the header kept: the same file, new contents
        n = int.from_bytes(f.read(8), "little")
        f.seek(8 + n)
        f.write(bytes(os.path.getsize(path) - 8 - n))
    assert torch.equal(run(nodes, "CLIPInverterEncodeText", loaded, PROMPT), t)
    assert torch.equal(edit(), before)
    path.unlink()


# --- the edit ----------------------------------------------------------------------------------------------------
PIXEL_FLIPS = 1e-3  # share of 8-bit values allowed one level off the CLI's: float rounding, not a different edit


def test_an_edit_through_the_nodes_gives_the_pixels_of_the_cli(single, face, standin256, tmp_path):
    from clipinverter_core.__main__ import main

    pixels = single["pixels"]
    assert pixels.shape == (1, 256, 256, 3) and pixels.dtype == torch.float32
    ours = np.clip(255.0 * pixels[0].numpy(), 0, 255).astype(np.uint8)  # as SaveImage
    assert main(["edit", "--model", standin256, "--image", face[0], "--text", PROMPT, "-o", str(tmp_path / "cli.png"),
                 "--no-align", "--device", "cpu"]) == 0
    diff = np.abs(ours.astype(int) - np.asarray(Image.open(tmp_path / "cli.png")).astype(int))
    # The nodes run the inversion and the edit as separate calls, the CLI as one batched pass: oneDNN may sum in
    # another order, and a value that lands on a level's edge truncates to the next (34 of 196608 on AMD EPYC).
    assert diff.max() <= 1 and (diff > 0).mean() < PIXEL_FLIPS, (diff.max(), int((diff > 0).sum()))


def test_every_batch_loop_reports_progress_and_checks_cancel(nodes, model, face):
    RECORD.free_memory = 0  # room for one item at a time: a chunk per prompt
    t = run(nodes, "CLIPInverterEncodeText", model, "a\n\n  b \nc\n")  # blank lines are not prompts
    assert t.shape == (3, 512)
    assert [p.current for p in RECORD.progress] == [3] and RECORD.checks == 3
    RECORD.reset()
    RECORD.free_memory = 0
    RECORD.interrupt_after_checks = 1  # cancel pressed while the first item runs
    with pytest.raises(comfy_stubs.InterruptProcessingException):
        run(nodes, "CLIPInverterEncodeText", model, "a\nb\nc")
    assert RECORD.checks == 2 and RECORD.progress[-1].current == 1


@pytest.mark.parametrize("n_faces,n_prompts,expected", [(1, 2, 2), (2, 1, 2)])
def test_batches_broadcast(nodes, model, face, single, n_faces, n_prompts, expected):
    t = single["t"].repeat(n_prompts, 1)
    latent = run(nodes, "CLIPInverterInvert", model, face[1].repeat(n_faces, 1, 1, 1), t, 1.0, True, True, True)
    assert latent.w.shape == (expected, 14, 512)
    for k in range(expected):  # every pair is the single edit (one face, one prompt, repeated)
        torch.testing.assert_close(latent.w[k:k + 1], single["edited"].w, atol=1e-5, rtol=0)


@pytest.mark.parametrize("n_latents,n_prompts", [(2, 1), (1, 2), (2, 2)])
def test_remap_pairs_latents_and_embeddings(nodes, model, single, n_latents, n_prompts):
    out = run(nodes, "CLIPInverterRemap", model, single["edited"].index([0] * n_latents),
              single["t"].repeat(n_prompts, 1), 1.0)
    torch.testing.assert_close(out.conv, single["remapped"].conv.repeat(2, 1, 1))


def test_mismatched_batches_are_a_clear_error(nodes, model, face, single):
    t = single["t"].repeat(2, 1)
    with pytest.raises(Exception, match="3 images and 2 embeddings do not pair up"):
        run(nodes, "CLIPInverterInvert", model, face[1].repeat(3, 1, 1, 1), t, 1.0, True, True, True)
    with pytest.raises(Exception, match="3 latents and 2 embeddings do not pair up"):
        run(nodes, "CLIPInverterRemap", model, single["plain"].index([0, 0, 0]), t, 1.0)


def test_no_level_leaves_the_inversion(nodes, model, face, single):
    t, w = single["t"], single["plain"].w
    torch.testing.assert_close(run(nodes, "CLIPInverterInvert", model, face[1], t, 1.0, False, False, False).w, w)
    assert run(nodes, "CLIPInverterRemap", model, single["plain"], t, 0.0).conv is None


def test_encode_image_matches_the_text_norm(nodes, model, face):
    ref = run(nodes, "CLIPInverterEncodeText", model, "a photo of a face")
    matched = run(nodes, "CLIPInverterEncodeImage", model, face[1].repeat(2, 1, 1, 1), "match text")
    raw = run(nodes, "CLIPInverterEncodeImage", model, face[1], "none")
    assert matched.shape == (2, 512)
    torch.testing.assert_close(matched.norm(dim=-1), ref.norm(dim=-1).expand(2), rtol=1e-5, atol=0)
    torch.testing.assert_close(matched[0] / matched[0].norm(), raw[0] / raw[0].norm(), rtol=1e-5, atol=1e-6)


# --- whole photos: Align Face and Paste Back ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def photo():
    """The astronaut as ComfyUI's Load Image gives it: [1, 512, 512, 3] float in [0, 1]."""
    from skimage import data

    return torch.from_numpy(data.astronaut().astype(np.float32) / 255.0)[None]


@pytest.fixture(scope="module")
def aligned(nodes, photo):
    return nodes["CLIPInverterAlignFace"].execute(photo, 0, 256, "error").args


def test_align_face_gives_one_crop_and_its_alignment(aligned, photo):
    crops, alignment = aligned
    assert crops.shape == (1, 256, 256, 3) and crops.dtype == torch.float32
    assert 0 <= crops.min() and crops.max() <= 1
    assert len(alignment) == 1 and alignment.batch_size == 1
    face = alignment.faces[0]
    assert face.batch_index == 0 and face.face_index == 0 and face.source_size == (512, 512)


def test_align_face_reports_progress_per_photo_and_merges_the_batch(nodes, photo):
    blank = torch.zeros_like(photo)
    crops, alignment = nodes["CLIPInverterAlignFace"].execute(torch.cat([blank, photo]), 0, 64,
                                                              "passthrough").args
    assert crops.shape == (2, 64, 64, 3) and alignment.batch_size == 2
    assert [f.batch_index for f in alignment.faces] == [0, 1]
    assert alignment.faces[0].passthrough and not alignment.faces[1].passthrough
    # tracking 'auto' first scans the batch (detections and cuts: a blank frame then a photo is no video), then
    # aligns each photo alone with those detections: two steps per photo, a cancel check before each
    assert [(p.current, p.total) for p in RECORD.progress] == [(4, 4)] and RECORD.checks == 4
    RECORD.reset()
    off = nodes["CLIPInverterAlignFace"].execute(torch.cat([blank, photo]), 0, 64, "passthrough", tracking="off").args
    torch.testing.assert_close(off[0], crops, rtol=0, atol=0)
    assert [(p.current, p.total) for p in RECORD.progress] == [(2, 2)] and RECORD.checks == 2


def test_a_photo_without_a_face_is_a_clear_error(nodes, photo):
    blank = torch.zeros_like(photo)
    with pytest.raises(Exception, match="no face found in photo 1 of the batch.*passthrough") as e:
        nodes["CLIPInverterAlignFace"].execute(torch.cat([photo, blank]), 0, 256, "error")
    assert "\n" not in str(e.value)
    crops, alignment = nodes["CLIPInverterAlignFace"].execute(blank, 0, 256, "passthrough").args
    assert crops.shape == (1, 256, 256, 3) and alignment.faces[0].passthrough


def test_paste_back_of_the_unedited_crop_keeps_the_photo_outside_the_mask(nodes, aligned, photo):
    crops, alignment = aligned
    out = run(nodes, "CLIPInverterPasteBack", photo, crops, alignment, 0.1)
    assert out.shape == photo.shape and out.dtype == torch.float32
    changed = (out != photo).any(-1)[0]
    ys, xs = torch.nonzero(changed, as_tuple=True)
    quad = alignment.faces[0].quad
    assert xs.min() >= np.floor(quad[:, 0].min()) and xs.max() <= np.ceil(quad[:, 0].max())
    assert ys.min() >= np.floor(quad[:, 1].min()) and ys.max() <= np.ceil(quad[:, 1].max())
    assert (out - photo).abs().mean() < 0.01  # the crop itself comes back close to where it was cut


def test_align_invert_decode_paste_back_returns_the_photo_size(nodes, model, aligned, photo, single):
    crops, alignment = aligned
    latent = run(nodes, "CLIPInverterInvert", model, crops, single["t"], 1.0, True, True, True)
    edited = run(nodes, "CLIPInverterDecode", model, latent)
    out = run(nodes, "CLIPInverterPasteBack", photo, edited, alignment, 0.1)
    assert out.shape == (1, 512, 512, 3)
    assert (out[:, :5] == photo[:, :5]).all()  # the top rows lie outside the face


def test_n_edits_of_one_face_give_n_photos(nodes, aligned, photo):
    crops, alignment = aligned
    edits = torch.stack([crops[0], 1 - crops[0], crops[0] * 0.5])
    out = run(nodes, "CLIPInverterPasteBack", photo, edits, alignment, 0.1)
    assert out.shape == (3, 512, 512, 3)
    assert [p.current for p in RECORD.progress] == [3] and RECORD.checks == 3  # before, and between the edits
    for k in range(3):
        one = run(nodes, "CLIPInverterPasteBack", photo, edits[k:k + 1], alignment, 0.1)
        torch.testing.assert_close(out[k:k + 1], one, rtol=0, atol=0)


def test_paste_back_outputs_its_blend_mask_with_grow_and_colour_match(nodes, aligned, photo):
    crops, alignment = aligned
    edits = torch.stack([crops[0], 1 - crops[0]])
    out, mask = nodes["CLIPInverterPasteBack"].execute(photo, edits, alignment, 0.1, 1.0, 0.0).args
    assert mask.shape == (2, 512, 512) and mask.dtype == torch.float32 and mask.max() == 1
    assert ((out != photo).any(-1) <= (mask > 0)).all()  # nothing changed outside the mask
    shrunk = nodes["CLIPInverterPasteBack"].execute(photo, edits, alignment, 0.1, 1.0, -0.1).args[1]
    assert (shrunk > 0).sum() < (mask > 0).sum()
    plain = nodes["CLIPInverterPasteBack"].execute(photo, edits, alignment, 0.1, 0.0, 0.0).args[0]
    assert not torch.equal(plain, out)  # color_match reaches the paste


def test_paste_back_counts_that_do_not_fit_are_a_clear_error(nodes, photo):
    two = torch.cat([photo, photo])
    crops, alignment = nodes["CLIPInverterAlignFace"].execute(two, 0, 64, "error").args
    with pytest.raises(Exception, match="3 edited images do not fit an alignment of 2 faces"):
        run(nodes, "CLIPInverterPasteBack", two, crops[[0, 1, 0]], alignment, 0.1)


# --- latents -----------------------------------------------------------------------------------------------------
def test_blend_ends_are_its_inputs(nodes, single):
    a, b = single["plain"], single["remapped"]
    start, end = (run(nodes, "CLIPInverterBlendLatents", a, b, r) for r in (0.0, 1.0))
    torch.testing.assert_close(start.w, a.w)
    torch.testing.assert_close(start.conv, a.w[:, :-1])  # un-remapped conv codes are the first W+ rows
    torch.testing.assert_close(end.w, b.w)
    torch.testing.assert_close(end.conv, b.conv)


def test_saved_latents_load_back(nodes, single, comfy):
    _, fp, _ = comfy
    lat = single["remapped"]
    out = nodes["CLIPInverterSaveLatent"].execute(lat, "clipinverter/test")
    saved = out.ui["latents"][0]
    src = os.path.join(fp.get_output_directory(), saved["subfolder"], saved["filename"])
    os.replace(src, os.path.join(fp.get_input_directory(), saved["filename"]))
    back = run(nodes, "CLIPInverterLoadLatent", saved["filename"])
    torch.testing.assert_close(back.w, lat.w)
    torch.testing.assert_close(back.conv, lat.conv)


def test_out_of_memory_frees_other_models_and_retries_the_item_once(comfy, model):
    pack = comfy[0]
    calls = []

    def work(inv, a, b):
        calls.append((a, b))
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return torch.tensor([a])

    RECORD.free_memory = 0  # one item per chunk from the start
    assert [int(r) for r in pack.nodes.memory.run_chunks(model, 2, work)] == [0, 1]
    assert calls == [(0, 1), (0, 1), (1, 2)] and len(RECORD.freed) == 1

    def always(inv, a, b):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    with pytest.raises(torch.OutOfMemoryError):
        pack.nodes.memory.run_chunks(model, 1, always)


def test_gathered_chunks_fill_one_host_tensor_per_output(comfy, model):
    memory = comfy[0].nodes.memory
    RECORD.free_memory = 0  # one item per chunk
    seen = []

    def work(inv, a, b):
        seen.append((a, b))
        return torch.arange(a, b, dtype=torch.float32)[:, None].expand(b - a, 2), None

    w, conv = memory.gather_chunks(model, 3, work)
    assert seen == [(0, 1), (1, 2), (2, 3)] and conv is None
    assert w.tolist() == [[0, 0], [1, 1], [2, 2]]
    one = memory.gather_chunks(model, 2, lambda inv, a, b: torch.full((b - a, 3), float(a)))
    assert isinstance(one, torch.Tensor) and one.tolist() == [[0] * 3, [1] * 3]
    kept = []
    assert memory.run_chunks(model, 2, lambda inv, a, b: torch.tensor([a]), lambda a, b, r: kept.append(r)) == []
    assert [int(r) for r in kept] == [0, 1]  # with a sink nothing is kept by the loop itself


# --- Edit Metrics --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def arcface_in_model_folder(comfy, lossnet_factory):
    _, _, base = comfy
    target = base / "models" / "clipinverter" / "model_ir_se50.pth"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.symlink(lossnet_factory()["arcface"], target)
    return "model_ir_se50.pth"


def test_edit_metrics_lists_the_arcface_file_of_the_model_folder_and_picks_it(nodes, arcface_in_model_folder):
    arcface = next(i for i in nodes["CLIPInverterEditMetrics"].define_schema().inputs if i.id == "arcface")
    assert arcface.options["options"] == ["none", arcface_in_model_folder]
    assert arcface.options["default"] == arcface_in_model_folder
    assert "not in the 'clipinverter' model folder" in nodes["CLIPInverterEditMetrics"].validate_inputs("x.pth")


def test_edit_metrics_scores_each_edit_as_the_core_does(nodes, model, face, single, comfy, arcface_in_model_folder):
    from clipinverter_core.lossnets import load_arcface
    from clipinverter_core.metrics import score_edits

    pixels = torch.cat([single["pixels"], face[1]])  # the edit, and the original itself as an "edit"
    t = single["t"].repeat(2, 1)
    table, clip, ident = nodes["CLIPInverterEditMetrics"].execute(model, face[1], pixels, t, "a photo of a face",
                                                                  arcface_in_model_folder).args
    lines = table.splitlines()
    assert lines[0].split() == ["edit", "original", "embedding", "clip_score", "directional", "identity"]
    assert len(lines) == 4 and lines[3].startswith("mean")
    assert [p.current for p in RECORD.progress] == [1, 2]  # the source text, then one step per edit
    inv, net = model.inverter, load_arcface(str(comfy[2] / "models" / "clipinverter" / arcface_in_model_folder))
    ref = score_edits(inv.clip, face[1].movedim(-1, 1) * 2 - 1, pixels.movedim(-1, 1) * 2 - 1, t,
                      inv.encode_text(["a photo of a face"]), identity_net=net)
    assert clip == pytest.approx(ref["clip_score"].mean().item(), abs=1e-6)
    assert ident == pytest.approx(ref["identity"].mean().item(), abs=1e-6)
    itself = lines[2].split()  # the original scored against itself: the same face, and no change at all
    assert float(itself[5]) == pytest.approx(1, abs=1e-4) and float(itself[4]) == 0


def test_edit_metrics_without_arcface_leaves_identity_out_and_says_so(nodes, model, face, single):
    table, clip, ident = nodes["CLIPInverterEditMetrics"].execute(model, face[1], single["pixels"], single["t"],
                                                                  "a photo of a face", "none").args
    assert math.isnan(ident) and -1 <= clip <= 1
    assert table.splitlines()[1].split()[-1] == "-" and "identity: skipped (no ArcFace file chosen)" in table
    with pytest.raises(Exception, match="2 originals and 3 edits do not pair up"):
        nodes["CLIPInverterEditMetrics"].execute(model, face[1].repeat(2, 1, 1, 1), single["pixels"].repeat(3, 1, 1, 1),
                                                 single["t"], "a photo of a face", "none")


def test_edit_metrics_loads_arcface_through_comfyui_model_management(nodes, model, face, single, comfy,
                                                                      arcface_in_model_folder):
    """ArcFace gets a ModelPatcher of its own on the inverter's devices, loaded in the same load_models_gpu call as
    the inverter's networks; ComfyUI offloads it like theirs, and the pack keeps no copy of its own."""
    metrics = comfy[0].nodes.metrics
    nodes["CLIPInverterEditMetrics"].execute(model, face[1], single["pixels"], single["t"], "a photo of a face",
                                             arcface_in_model_folder)
    with_arcface = [patchers for patchers, _, full in RECORD.loads if len(patchers) == 2 and full]
    assert with_arcface and all(p[0] is model.patcher for p in with_arcface)
    arcface = with_arcface[0][1]
    assert type(arcface.model).__name__ == "ArcFaceIdentity"
    assert (arcface.load_device, arcface.offload_device) == (model.patcher.load_device, model.patcher.offload_device)
    assert not any(isinstance(v, dict) and v for k, v in vars(metrics).items() if "cache" in k)
    comfy[0].nodes.memory.mm.free_memory(1e30, model.device)  # ComfyUI needs the room
    assert arcface in RECORD.offloads


def test_the_image_boundary_converts_both_ways_without_changing_a_value(comfy):
    images = comfy[0].nodes.images
    image = torch.rand(2, 5, 7, 4)  # an IMAGE with an alpha channel: dropped on the way in
    pictures = images.to_core(image)
    assert pictures.shape == (2, 3, 5, 7) and torch.equal(pictures, image[..., :3].permute(0, 3, 1, 2))
    back = images.to_comfy(pictures.double())
    assert back.dtype == torch.float32 and back.device == RECORD.devices["intermediate"]
    assert torch.equal(back, image[..., :3])
    masks = images.as_output(torch.ones(2, 5, 7, dtype=torch.float16))
    assert masks.dtype == torch.float32 and masks.device == RECORD.devices["intermediate"]
