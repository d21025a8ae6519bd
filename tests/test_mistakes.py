"""A new user's mistakes, each one line on stderr with exit 2 and found before the model loads: a device this
machine lacks, strengths that are not numbers, empty prompts, a missing picture, an output that cannot be
written, a still image given as a video. A stage-1 training result (no CLIPRemapper) edits without remapping,
saying so once, in the CLI and in the nodes."""
import pytest
import torch
from PIL import Image

import comfy_stubs
from clipinverter_core.__main__ import main
from clipinverter_core.pipeline import CLIPInverter

DEVICE_COMMANDS = {  # every command that takes --device, with what else it needs to parse
    "edit": ["--model", "M", "--image", "I", "--text", "a smile", "-o", "O.png"],
    "edit-video": ["--model", "M", "--input", "I", "--text", "a smile", "-o", "O.mp4"],
    "evaluate": ["--model", "M", "--images", ".", "--text", "a smile", "-o", "R"],
    "train": ["--stage", "1", "--data", ".", "--out", "R", "--model", "M"],
    "bench": [],
}


@pytest.fixture
def never_loads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")
    monkeypatch.setattr(CLIPInverter, "from_bundle", classmethod(refuse))


def one_line_error(capsys, code) -> str:
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, (code, err)
    return err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", DEVICE_COMMANDS)
@pytest.mark.parametrize("device, says", [("cuda", "no CUDA device here"), ("cuda:1", "no CUDA device here"),
                                          ("gpu", "unknown device 'gpu'")])
def test_a_device_this_machine_lacks_is_one_line(command, device, says, never_loads, capsys):
    err = one_line_error(capsys, main([command, *DEVICE_COMMANDS[command], "--device", device]))
    assert says in err and ("use --device cpu" in err or "use cpu, cuda" in err)
    if device == "cuda":
        assert f"torch {torch.__version__}" in err  # which build of torch, so the user knows what to install


@pytest.mark.skipif(getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
                    reason="this machine has MPS")
def test_no_mps_is_one_line(never_loads, capsys):
    err = one_line_error(capsys, main(["edit", *DEVICE_COMMANDS["edit"], "--device", "mps"]))
    assert "no Apple MPS device here" in err and "use --device cpu" in err


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "face.png"
    Image.new("RGB", (256, 256), (120, 90, 60)).save(path)
    return str(path)


@pytest.mark.parametrize("args, says", [
    (["--strength", "nan"], "--strength must be a finite number, not nan"),
    (["--remap-strength", "inf"], "--remap-strength must be a finite number, not inf"),
    (["--text", " "], "prompt 2 of 2 is empty"),
    (["--image", "missing.png"], "no file at missing.png"),
    (["-o", "{photo}/out.png"], "is a file, not a folder"),
])
def test_mistakes_are_found_before_the_model_loads_and_write_nothing(args, says, standin256, photo, tmp_path,
                                                                   never_loads, capsys):
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = ["edit", "--model", standin256, "--image", photo, "--text", "a smile", "-o", str(tmp_path / "out.png"),
            "--no-align", *[a.format(photo=photo) for a in args]]
    err = one_line_error(capsys, main(argv))
    assert says in err and "stand-in" not in err  # before the stand-in banner, which comes with the model
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_evaluate_strength_lists_are_checked_too(standin256, tmp_path, never_loads, capsys):
    err = one_line_error(capsys, main(["evaluate", "--model", standin256, "--images", str(tmp_path), "--text", "a",
                                       "--strength", "0.5,nan", "-o", str(tmp_path / "r")]))
    assert "--strength must be a finite number, not nan" in err


def test_a_strength_beyond_the_slider_warns_in_one_line_and_edits(standin256, photo, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(["edit", "--model", standin256, "--image", photo, "--text", "a smile", "-o", str(out),
                 "--no-align", "--device", "cpu", "--strength", "1e9"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: --strength 1e+09 is outside -10..10, the range of the nodes' slider: expect a "
                        "picture far from a face"]
    assert out.exists()


def test_a_still_image_given_to_edit_video_is_refused(standin256, photo, tmp_path, never_loads, capsys):
    err = one_line_error(capsys, main(["edit-video", "--model", standin256, "--input", photo, "--text", "a smile",
                                       "-o", str(tmp_path / "out.mp4")]))
    assert "is a still image, not a video" in err and f"edit --input {photo}" in err


@pytest.fixture(scope="module")
def stage1_bundle(standin256, tmp_path_factory):
    """The stand-in bundle without its CLIPRemapper, as `train --stage 1` then `export` write it."""
    from clipinverter_core.weights.bundle import load_bundle, read_metadata, save_bundle

    b = load_bundle(standin256, mmap=False)
    tensors = {k: v for k, v in b.tensors.items()
               if not k.startswith(("generator.lambdas.", "generator.affine_mlps."))}
    assert len(tensors) < len(b.tensors)
    path = str(tmp_path_factory.mktemp("stage1") / "stage1.safetensors")
    save_bundle(path, tensors, read_metadata(standin256))
    return path


def test_a_stage_1_bundle_edits_without_remapping_and_says_so(stage1_bundle, photo, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(["edit", "--model", stage1_bundle, "--image", photo, "--text", "a smile", "-o", str(out),
                 "--no-align", "--device", "cpu", "--save-raw", str(tmp_path / "raw.safetensors")]) == 0
    err = capsys.readouterr().err
    assert err.count("no CLIPRemapper") == 1 and "editing without remapping" in err
    model = CLIPInverter.from_bundle(stage1_bundle, "cpu")
    assert not model.has_remapper and "no CLIPRemapper" in model.contents()
    from clipinverter_core.images import load_image, pil_to_encoder_input
    from safetensors.torch import load_file

    expected = model.edit(pil_to_encoder_input(load_image(photo)), model.encode_text(["a smile"]), remap_strength=0)
    torch.testing.assert_close(load_file(str(tmp_path / "raw.safetensors"))["image"], expected.image, rtol=0, atol=0)
    with pytest.raises(Exception, match="no CLIPRemapper"):
        model.remap(expected.w_hat, model.encode_text(["a smile"]))  # the API says what to do instead


def test_the_nodes_say_what_a_stage_1_bundle_holds_and_remap_passes_through(stage1_bundle, tmp_path, caplog):
    import logging
    import os

    with comfy_stubs.installed(str(tmp_path)) as fp:
        pack = comfy_stubs.load_pack()
        nodes = {n.define_schema().node_id: n for n in pack.nodes.NODES}
        folder = tmp_path / "models" / "clipinverter"
        folder.mkdir(parents=True, exist_ok=True)
        os.symlink(stage1_bundle, folder / "stage1.safetensors")
        assert "stage1.safetensors" in fp.get_filename_list("clipinverter")
        with caplog.at_level(logging.INFO, logger="clipinverter"):
            model = nodes["CLIPInverterLoader"].execute("stage1.safetensors", "default", "fp32")[0]
            t = nodes["CLIPInverterEncodeText"].execute(model, "a smile")[0]
            latent = nodes["CLIPInverterInvert"].execute(model, torch.full((1, 256, 256, 3), 0.5), t, 1.0, True, True,
                                                         True)[0]
            remapped = nodes["CLIPInverterRemap"].execute(model, latent, t, 1.0)[0]
        assert torch.equal(remapped.w, latent.w) and remapped.conv is None  # the codes as they came
        said = caplog.text
        assert "loaded stage1.safetensors: encoder, adapter (coarse, medium, fine), generator 256, no CLIPRemapper" \
            in said
        assert "Remap Latent passes the codes through" in said


class Terminal:
    """A stderr that says it is a terminal: where the progress line shows."""

    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s

    def flush(self):
        pass

    def isatty(self):
        return True


def test_edit_shows_a_progress_line_on_a_terminal_and_nothing_in_a_log(standin256, photo, tmp_path, monkeypatch,
                                                                         capsys):
    import sys

    argv = ["edit", "--model", standin256, "--image", photo, "--text", "a smile", "--no-align", "--device", "cpu"]
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(argv + ["-o", str(tmp_path / "a.png")]) == 0
    assert all(step in terminal.text for step in ("loading the model", "finding the faces", "editing"))
    monkeypatch.undo()
    assert main(argv + ["-o", str(tmp_path / "b.png")]) == 0
    assert "loading the model" not in capsys.readouterr().err  # not a terminal: no progress line
