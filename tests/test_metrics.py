"""Each metric on inputs whose answer is known, and moving the right way on controlled cases.

CLIP scores on embeddings built to agree or disagree; identity and LPIPS on the same face, flipped, noised and
swapped for another face (the parity kit's stand-in ArcFace and AlexNet: random weights, so only what holds for
any such network is asserted); FID/KID on a stand-in Inception file of the real layout.
"""
from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F

from clipinverter_core.errors import CheckpointError
from clipinverter_core.metrics import (clip_score, directional_similarity, identity_similarity, image_embeddings,
                                       load_networks, lpips_distance)
from metrics_standins import standin_inception

DIM = 512


def _unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)


def _orthogonal_to(t, seed=1):
    u = _unit(*t.shape, seed=seed)
    u = u - (u * t).sum(-1, keepdim=True) * t
    return F.normalize(u, dim=-1)


# --- CLIP score and directional similarity ------------------------------------------------------------------------
def test_clip_score_is_one_when_image_and_text_agree_and_minus_one_when_they_disagree():
    t = _unit(4, DIM)
    torch.testing.assert_close(clip_score(3.0 * t, t), torch.ones(4))  # scale-free
    torch.testing.assert_close(clip_score(-t, t), -torch.ones(4))
    torch.testing.assert_close(clip_score(_orthogonal_to(t), t), torch.zeros(4), atol=1e-6, rtol=0)


def test_clip_score_is_the_cosine_of_the_angle_and_falls_as_the_image_turns_away():
    t, u = _unit(1, DIM), None
    u = _orthogonal_to(t)
    angles = torch.tensor([0.0, 0.3, 0.8, 1.4, 2.5])
    images = torch.cos(angles)[:, None] * t + torch.sin(angles)[:, None] * u
    scores = clip_score(images, t)  # one text broadcast over five images
    torch.testing.assert_close(scores, torch.cos(angles), atol=1e-6, rtol=0)
    assert (scores[1:] < scores[:-1]).all()


def test_directional_similarity_follows_the_change_not_the_position():
    src_txt, tgt_txt = _unit(1, DIM, seed=3), _unit(1, DIM, seed=4)
    c = F.normalize(tgt_txt - src_txt, dim=-1)  # the text's change
    a = _orthogonal_to(c, seed=5)  # where the image sits
    d = _orthogonal_to(F.normalize(c + a, dim=-1), seed=6)
    d = F.normalize(d - (d * c).sum() * c - (d * a).sum() * a, dim=-1)  # a third direction, orthogonal to both
    phi = 0.3

    def pair(direction):  # two unit embeddings whose difference is along `direction`
        return math.cos(phi) * a - math.sin(phi) * direction, math.cos(phi) * a + math.sin(phi) * direction

    def score(direction):
        return directional_similarity(*pair(direction), src_txt, tgt_txt).item()

    assert score(c) == pytest.approx(1, abs=1e-5)
    assert score(-c) == pytest.approx(-1, abs=1e-5)
    assert score(d) == pytest.approx(0, abs=1e-5)
    assert score(F.normalize(c + d, dim=-1)) == pytest.approx(math.sqrt(0.5), abs=1e-5)  # halfway: cos 45 degrees
    src = pair(c)[0]
    assert directional_similarity(src, 2 * src, src_txt, tgt_txt).item() == 0  # no change, no direction


def test_image_embeddings_are_the_pipelines_clip_image_embeddings(standin256):
    from clipinverter_core.pipeline import CLIPInverter

    model = CLIPInverter.from_bundle(standin256, "cpu", sections=("clip",))
    x = torch.rand(2, 3, 300, 260) * 2 - 1  # not square, not 224: the standard preprocessing resizes and crops
    torch.testing.assert_close(image_embeddings(model.clip, x), model.encode_image((x + 1) / 2))


# --- identity and LPIPS --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nets(lossnet_factory):
    files = lossnet_factory()
    nets, skipped = load_networks(files["arcface"], files["alexnet"], device="cpu")
    assert not skipped
    return nets


@pytest.fixture(scope="module")
def faces():
    """Two different faces (LFW, in skimage) as 256x256 RGB in [-1, 1], and noised copies of the first."""
    from skimage import data

    lfw = torch.from_numpy(data.lfw_subset()[:2]).float()[:, None].repeat(1, 3, 1, 1)
    a, b = (F.interpolate(lfw, size=(256, 256), mode="bicubic", align_corners=False).clamp(0, 1) * 2 - 1)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(a.shape, generator=g)
    return {"same": a[None], "flipped": a.flip(-1)[None], "noised": (a + 0.05 * noise).clamp(-1, 1)[None],
            "very noised": (a + 0.4 * noise).clamp(-1, 1)[None], "other": b[None]}


def test_identity_is_one_for_the_same_crop_and_falls_with_noise_and_for_another_face(nets, faces):
    net = nets["identity_net"]
    batch = torch.cat([faces[k] for k in ("same", "noised", "very noised", "other", "flipped")])
    same, noised, very, other, flipped = identity_similarity(net, faces["same"], batch).tolist()
    assert same == pytest.approx(1, abs=1e-5)
    assert 1 > noised > very  # more noise, less the same face
    assert other < noised  # another face is further than a lightly noised copy
    assert flipped < 1 - 1e-3  # a mirror image is another picture (random weights: no flip invariance to test)
    assert identity_similarity(net, faces["other"], faces["same"]).item() == pytest.approx(other, abs=1e-6)


def test_identity_pools_larger_images_to_256_first(nets, faces):
    big = F.interpolate(torch.cat([faces["same"], faces["other"]]), scale_factor=4, mode="nearest")
    torch.testing.assert_close(identity_similarity(nets["identity_net"], big[:1], big[1:]),
                               identity_similarity(nets["identity_net"], faces["same"], faces["other"]))


def test_lpips_is_zero_for_the_same_crop_and_grows_with_noise_and_for_another_face(nets, faces):
    net = nets["perceptual_net"]
    batch = torch.cat([faces[k] for k in ("same", "noised", "very noised", "other")])
    same, noised, very, other = lpips_distance(net, faces["same"], batch).tolist()
    assert same == pytest.approx(0, abs=1e-6)
    assert 0 < noised < very
    assert other > noised


def test_missing_loss_files_skip_their_scores_and_say_where_to_get_them(tmp_path):
    nets, skipped = load_networks(folders=[str(tmp_path)])
    assert nets == {} and set(skipped) == {"identity", "lpips"}
    assert "model_ir_se50.pth" in skipped["identity"] and str(tmp_path) in skipped["identity"]
    assert "alexnet-owt-7be5be79.pth" in skipped["lpips"]
    with pytest.raises(CheckpointError, match="no arcface file at"):  # a path given that is not there
        load_networks(arcface=str(tmp_path / "nope.pth"))


# --- FID and KID ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inception(tmp_path_factory):
    from clipinverter_core.metrics.fidelity import load_inception

    return load_inception(standin_inception(tmp_path_factory))


def test_fid_and_kid_are_zero_for_a_set_against_itself_and_grow_with_noise(inception, faces):
    from clipinverter_core.metrics.fidelity import fid_kid, inception_features

    g = torch.Generator().manual_seed(1)
    base = torch.cat([faces["same"], faces["other"], faces["flipped"], faces["other"].flip(-1)])
    sets = [(base + s * torch.randn(base.shape, generator=g)).clamp(-1, 1) for s in (0.1, 0.4)]
    f0, f1, f2 = (inception_features(inception, x) for x in [base] + sets)
    same, near, far = fid_kid(f0, f0), fid_kid(f0, f1), fid_kid(f0, f2)
    assert same["fid"] == pytest.approx(0, abs=1e-5)
    assert 0 < near["fid"] < far["fid"]
    # KID's unbiased estimate of a set against itself sits just below 0 (the cross term holds the self-pairs)
    assert -near["kid"] < same["kid"] <= 0 < near["kid"] < far["kid"]


def test_an_inception_file_of_another_layout_or_a_missing_one_is_a_clear_error(tmp_path):
    from clipinverter_core.metrics.fidelity import INCEPTION_URL, find_inception, load_inception

    with pytest.raises(CheckpointError) as e:
        find_inception(folders=[str(tmp_path)])
    assert "pt_inception-2015-12-05-6726825d.pth" in str(e.value) and INCEPTION_URL in str(e.value)
    wrong = str(tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    torch.save({"fc.weight": torch.zeros(3, 3)}, wrong)
    assert find_inception(folders=[str(tmp_path)]) == wrong
    with pytest.raises(CheckpointError, match="not an Inception-v3 FID state dict"):
        load_inception(wrong)


def test_an_inception_file_whose_pickle_would_run_code_is_refused(tmp_path):
    from clipinverter_core.errors import UnsafeCheckpointError
    from clipinverter_core.metrics.fidelity import load_inception

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo ran > " + str(tmp_path / "ran"),))

    bad = str(tmp_path / "evil.pth")
    torch.save({"x": Evil()}, bad)
    with pytest.raises(UnsafeCheckpointError):
        load_inception(bad)
    assert not (tmp_path / "ran").exists()


def test_table_means_skip_nan_and_json_writes_null(tmp_path):
    import json

    from clipinverter_core.metrics.table import mean_rows, text_table, write_json

    rows = [{"image": "a", "prompt": "p", "strength": 1.0, "clip_score": 0.2, "identity": math.nan},
            {"image": "b", "prompt": "p", "strength": 1.0, "clip_score": 0.4, "identity": 0.5}]
    (m,) = mean_rows(rows, ["clip_score", "identity"])
    assert m["clip_score"] == pytest.approx(0.3) and m["identity"] == 0.5 and m["n"] == 2
    write_json(str(tmp_path / "r.json"), {"rows": rows})
    assert json.load(open(tmp_path / "r.json"))["rows"][0]["identity"] is None
    table = text_table(rows + [m], ["clip_score", "identity"], {"lpips": "no file"})
    assert table.splitlines()[0].split() == ["image", "prompt", "strength", "clip_score", "identity"]
    assert "0.3000" in table and "lpips: skipped (no file)" in table


def test_fid_in_the_span_of_small_sets_is_torch_fidelitys_fid_on_the_whole_features():
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    from clipinverter_core.metrics.fidelity import fid_kid

    g = torch.Generator().manual_seed(0)
    a = torch.randn(12, 256, generator=g, dtype=torch.float64).abs()
    b = (a[:9] + 0.3 * torch.randn(9, 256, generator=g, dtype=torch.float64)).abs()
    full = fid_statistics_to_metric(fid_features_to_statistics(a), fid_features_to_statistics(b), verbose=False)
    assert fid_kid(a, b)["fid"] == pytest.approx(full["frechet_inception_distance"], rel=1e-6)
