"""Identity tuning from the CLI: `edit --refine-identity` tunes at the photo's own inversion before editing,
reports what tuning bought (the log and --save-raw), saves the tuned weights, and `edit --tuning FILE` edits
with them to the same pixels; the crops it tunes towards are the photo's faces at the generator's side; its
mistakes are one line before the model loads."""
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file

import skimage.data  # noqa: F401 - the astronaut (requirements-dev.txt): no skip

from clipinverter_core.__main__ import main
from clipinverter_core.align import align
from clipinverter_core.images import unit_to_signed
from clipinverter_core.photo import face_targets, find_faces
from test_mistakes import never_loads, one_line_error  # noqa: F401 - fixtures


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(path)
    return str(path)


def test_the_tuning_targets_are_the_faces_cropped_at_the_generators_side(astronaut):
    img = Image.open(astronaut)
    faces = find_faces(img, "cpu")
    for size in (256, 512):
        crops, _ = align(img, size)
        np.testing.assert_allclose(face_targets(faces, size).numpy(), unit_to_signed(crops).numpy(), atol=2e-5)
    given = find_faces(img.resize((256, 256)), "cpu", aligned=True)  # a crop given aligned: resized
    assert face_targets(given, 512).shape == (1, 3, 512, 512)


def test_edit_refine_identity_tunes_saves_and_edits_again_with_the_saved_weights(standin256, lossnet_factory,
                                                                                 astronaut, tmp_path, capsys):
    alexnet = lossnet_factory(0)["alexnet"]
    common = ["edit", "--model", standin256, "--input", astronaut, "--text", "a smile", "--device", "cpu",
              "--paste-back"]
    assert main([*common, "-o", str(tmp_path / "tuned.png"), "--refine-identity", "--tune-steps", "2",
                 "--tune-lpips-stop", "0", "--lpips-alexnet", alexnet, "--save-tuning", str(tmp_path / "t.safetensors"),
                 "--save-raw", str(tmp_path / "raw.safetensors")]) == 0
    err = capsys.readouterr().err
    assert "identity tuning (photo, 1 image(s), 2 step(s)): LPIPS" in err
    losses = load_file(str(tmp_path / "raw.safetensors"))["tuning_losses"]   # first L2, LPIPS, last L2, LPIPS
    assert losses.shape == (1, 4) and losses[0, 2] < losses[0, 0]
    assert main([*common, "-o", str(tmp_path / "again.png"), "--tuning", str(tmp_path / "t.safetensors")]) == 0
    tuned, again = (np.asarray(Image.open(tmp_path / f"{n}.png")) for n in ("tuned", "again"))
    np.testing.assert_array_equal(tuned, again)  # (that tuning changes the pixels: test_tuning.py)


@pytest.mark.parametrize("args, says", [
    (["--refine-identity", "--tuning", "{tmp}/t.safetensors"], "use one"),
    (["--save-tuning", "{tmp}/t.safetensors"], "add --refine-identity"),
    (["--refine-identity", "--lpips-alexnet", "{tmp}/missing.pth"], "no alexnet file at"),
    (["--refine-identity", "--tune-steps", "0"], "tuning steps must be a whole number"),
    (["--tuning", "{tmp}/missing.safetensors"], "no file at"),
])
def test_tuning_mistakes_are_one_line_before_the_model_loads(args, says, standin256, astronaut, tmp_path,
                                                             never_loads, capsys):  # noqa: F811
    (tmp_path / "t.safetensors").write_bytes(b"")
    argv = ["edit", "--model", standin256, "--input", astronaut, "--text", "a smile", "-o", str(tmp_path / "o.png"),
            *[a.format(tmp=tmp_path) for a in args]]
    assert says in one_line_error(capsys, main(argv))


def test_edit_video_refine_identity_tunes_one_generator_per_face_on_its_8_bit_crops(standin256, lossnet_factory,
                                                                                  tmp_path, capsys):
    from clipinverter_core.align.video import plan_clip, scan_frames
    from clipinverter_core.photo import track_crops
    from clipinverter_core.tuning import load_tuning
    from synthetic_clips import moving_astronaut, read_clip, write_clip

    frames = moving_astronaut(3)
    clip = str(tmp_path / "in.mp4")
    write_clip(clip, frames, 10)
    detections, cuts = scan_frames(frames)
    crops = track_crops(frames, plan_clip(detections, cuts), 512, every=2)
    assert list(crops) == [0] and crops[0][0].dtype == crops[0][1].dtype == torch.uint8
    assert crops[0][0].shape == (2, 3, 256, 256) and crops[0][1].shape == (2, 3, 512, 512)  # frames 0 and 2

    out, tuned = str(tmp_path / "out.mp4"), str(tmp_path / "t.safetensors")
    assert main(["edit-video", "--model", standin256, "--input", clip, "-o", out, "--text", "a smile", "--device",
                 "cpu", "--refine-identity", "--tune-steps", "1", "--tune-every", "3", "--save-tuning", tuned,
                 "--lpips-alexnet", lossnet_factory(0)["alexnet"], "--quiet"]) == 0
    assert "identity tuning (clip, 1 image(s), 1 step(s))" in capsys.readouterr().err  # frame 0 of 3
    tuning = load_tuning(tuned)
    assert tuning.settings.mode == "clip" and tuning.settings.regulariser and tuning.settings.lr == 3e-5
    assert len(read_clip(out)[1]) == 3


def test_evaluate_refine_identity_scores_each_edit_with_and_without_tuning(standin256, lossnet_factory, astronaut,
                                                                          tmp_path):
    import csv

    (tmp_path / "in").mkdir()
    Image.open(astronaut).save(tmp_path / "in" / "a.png")
    assert main(["evaluate", "--model", standin256, "--input", str(tmp_path / "in"), "-o", str(tmp_path / "r"),
                 "--text", "a smile", "--lpips-alexnet", lossnet_factory(0)["alexnet"], "--device", "cpu", "--quiet",
                 "--refine-identity", "--tune-steps", "1", "--tune-lpips-stop", "0"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "r" / "metrics.csv")))
    assert list(rows[0]) == ["image", "prompt", "strength", "clip_score", "directional", "lpips", "clip_score_tuned",
                             "directional_tuned", "lpips_tuned", "tuning_l2_before", "tuning_lpips_before",
                             "tuning_l2_after", "tuning_lpips_after"]
    row = rows[0]
    assert float(row["tuning_l2_after"]) < float(row["tuning_l2_before"])
    assert row["lpips_tuned"] != row["lpips"]  # the same codes, decoded by the tuned generator
