"""False faces: the detector's score and the face's size decide what counts as a face (align.FaceFilter), measured on
the photos the packages ship: scikit-image's astronaut (her mission patch is detected as a second face), matplotlib's
Grace Hopper, the two side by side, a group collage of four faces, and a crowd (one large face, one far behind).
The same filter is on `edit`, `align`, `edit-video`, `evaluate` and the Align Face node."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from matplotlib import cbook
from PIL import Image

from clipinverter_core.__main__ import main
from clipinverter_core.align import FaceFilter, detect_faces
from clipinverter_core.align.detect import MIN_FACE_SCORE, MIN_FACE_SIZE
from clipinverter_core.cli.common import Parser
from clipinverter_core.errors import InputError
from conftest import report_figure
from test_nodes import comfy, nodes  # noqa: F401 - fixtures

KEEP_ALL = FaceFilter(0.0, 0.0)


def _resized(a: np.ndarray, s: float) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((round(a.shape[1] * s), round(a.shape[0] * s)), Image.LANCZOS))


def _paste(canvas: np.ndarray, tiles) -> np.ndarray:
    for y, x, img in tiles:
        h, w = min(img.shape[0], canvas.shape[0] - y), min(img.shape[1], canvas.shape[1] - x)
        canvas[y:y + h, x:x + w] = img[:h, :w]
    return canvas


def photos() -> dict[str, tuple[np.ndarray, int]]:
    """name -> (photo, how many real faces it shows)."""
    astronaut = skimage.data.astronaut()
    hopper = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    side = np.concatenate([astronaut, _resized(hopper, 512 / 600)[:, :436]], 1)
    group = _paste(np.full((600, 800, 3), 128, np.uint8),
                   [(0, 0, _resized(astronaut, 0.6)), (0, 400, _resized(hopper, 0.5)),
                    (300, 0, _resized(hopper, 0.45)), (300, 400, _resized(astronaut, 0.55))])
    crowd = _paste(np.full((780, 800, 3), 100, np.uint8), [(0, 0, _resized(hopper, 1.3)),
                                                           (550, 570, _resized(astronaut, 0.45))])
    return {"astronaut": (astronaut, 1), "grace hopper": (hopper, 1), "side by side": (side, 2),
            "group collage": (group, 4), "crowd (one face far behind)": (crowd, 1)}


@pytest.fixture(scope="module")
def detected():
    return {name: (detect_faces(img, KEEP_ALL), detect_faces(img), n) for name, (img, n) in photos().items()}


def test_the_defaults_keep_every_real_face_and_drop_the_mission_patch(detected):
    real_scores, false_scores = [], []
    for name, (every, kept, n_real) in detected.items():
        assert len(kept) == n_real, (name, [(f.box, f.score) for f in every])
        kept_boxes = {f.box for f in kept}
        real_scores += [f.score for f in kept]
        false_scores += [f.score for f in every if f.box not in kept_boxes and f.score < MIN_FACE_SCORE]
    astronaut_all, astronaut_kept, _ = detected["astronaut"]
    assert len(astronaut_all) == 2 and astronaut_kept[0].box[3] < 200  # her face (upper); the patch is at y 335
    assert len(detected["side by side"][0]) == 3  # the patch again, beside two faces
    assert max(false_scores) < MIN_FACE_SCORE < min(real_scores)
    report_figure("face detector scores on the package photos",
                  f"real faces {min(real_scores):.3f} to {max(real_scores):.3f} ({len(real_scores)}), "
                  f"false {min(false_scores):.3f} to {max(false_scores):.3f} ({len(false_scores)}); "
                  f"default min score {MIN_FACE_SCORE}, min size {MIN_FACE_SIZE}")


def test_a_face_far_behind_is_left_out_by_size_and_kept_when_asked(detected):
    every, kept, _ = detected["crowd (one face far behind)"]
    assert len(every) == 2 and all(f.score > 1 for f in every)  # both real: the score keeps them
    small = min(every, key=lambda f: f.width)
    widest = max(f.width for f in every)
    assert small.width < MIN_FACE_SIZE * widest and small.box not in {f.box for f in kept}
    assert FaceFilter(MIN_FACE_SCORE, 0.0)(every) == every
    group_every, group_kept, _ = detected["group collage"]
    assert min(f.width for f in group_kept) >= 0.5 * max(f.width for f in group_kept)  # a group is far above 0.2


@pytest.mark.parametrize("score, size", [(-0.1, 0.2), (float("nan"), 0.2), (0.4, 1.5), (0.4, float("inf"))])
def test_bad_thresholds_are_input_errors(score, size):
    with pytest.raises(InputError, match="minimum face"):
        FaceFilter(score, size)


def test_the_cli_defaults_are_the_filter_s_and_every_detecting_command_has_them():
    from clipinverter_core.cli import evaluate, photos as photo_cli, video

    root = Parser(prog="x")
    sub = root.add_subparsers()
    for module in (photo_cli, video, evaluate):
        module.add_parser(sub)
    for command in ("edit", "align", "edit-video", "evaluate"):
        p = sub.choices[command]
        assert p.get_default("min_face_score") == FaceFilter().min_score, command
        assert p.get_default("min_face_size") == FaceFilter().min_size, command


def test_align_finds_the_patch_only_when_the_score_is_lowered(tmp_path, capsys):
    src = tmp_path / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(src)
    assert main(["align", "--input", str(src), "-o", str(tmp_path / "d.png"), "--face-index", "all", "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.glob("d*.png")) == ["d.png"]
    assert main(["align", "--input", str(src), "-o", str(tmp_path / "e.png"), "--face-index", "all", "--quiet",
                 "--min-face-score", "0"]) == 0
    assert sorted(p.name for p in tmp_path.glob("e*.png")) == ["e_0.png", "e_1.png"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["align", "--input", str(src), "-o", str(tmp_path / "f.png"), "--min-face-size", "2"])
    assert e.value.code == 2 and "--min-face-size: expected a fraction from 0 to 1" in capsys.readouterr().err


def test_align_face_node_has_the_same_filter(nodes):  # noqa: F811
    import torch

    photo = torch.from_numpy(skimage.data.astronaut()).float()[None] / 255   # IMAGE: [B, H, W, 3] in [0, 1]
    node = nodes["CLIPInverterAlignFace"]
    crops, alignment = node.execute(photo, -1, 64, "error").args
    assert crops.shape[0] == 1 and alignment.faces[0].quad[:, 1].max() < 260  # her face, not the patch
    crops, alignment = node.execute(photo, -1, 64, "error", min_face_score=0.0).args
    assert crops.shape[0] == 2
    with pytest.raises(Exception, match="minimum face size") as e:  # the pack's own copy of InputError
        node.execute(photo, -1, 64, "error", min_face_size=1.5)
    assert type(e.value).__name__ == "InputError"


@pytest.mark.parametrize("command", ["edit", "align", "edit-video", "evaluate"])
def test_every_detecting_command_hands_its_thresholds_to_the_detector(command, standin256, tmp_path, monkeypatch):
    from clipinverter_core.align import crops, video
    from synthetic_clips import moving_astronaut, write_clip

    class Detected(Exception):
        pass
    seen = []

    def detector(image, keep=FaceFilter()):
        seen.append(keep)
        raise Detected
    monkeypatch.setattr(crops, "detect_faces", detector)
    monkeypatch.setattr(video, "detect_faces", detector)
    photo = tmp_path / "in" / "a.png"
    photo.parent.mkdir()
    Image.fromarray(skimage.data.astronaut()).save(photo)
    argv = {"edit": ["edit", "--model", standin256, "--input", str(photo), "--text", "a smile", "--device", "cpu"],
            "align": ["align", "--input", str(photo)],
            "edit-video": ["edit-video", "--model", standin256, "--input", str(tmp_path / "c.mp4"), "--text", "x"],
            "evaluate": ["evaluate", "--model", standin256, "--input", str(photo.parent), "--text", "x", "--device",
                         "cpu"]}[command]
    if command == "edit-video":
        write_clip(str(tmp_path / "c.mp4"), moving_astronaut(2), 10)
    suffix = "o.mp4" if command == "edit-video" else "o" if command == "evaluate" else "o.png"
    with pytest.raises(Detected):
        main(argv + ["-o", str(tmp_path / suffix), "--quiet", "--min-face-score", "0.7", "--min-face-size", "0.3"])
    assert seen == [FaceFilter(0.7, 0.3)]
