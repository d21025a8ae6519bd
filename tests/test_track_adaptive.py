"""The track's default smoothing, `auto`, on clips with a known path (synthetic_clips.talking_head: the astronaut
on a 640x480 canvas at 24 fps, her face about 90 px wide, sensor noise of std 0.05 in every frame).

Every quad is carried back into the photo's own pixels, where a perfect track does not move at all:
- the slow clip (a talking head drifting, nodding, turning up to 6 degrees): the corners' RMS wobble from frame
  to frame stays at most 0.3% of the quad's width;
- the fast clip (at rest, then panning 5% of the face's width a frame while turning 15 degrees over 10 frames,
  then at rest): the worst stray from the resting place exceeds per-frame alignment's own by at most 0.5% of the
  width (the landmarks themselves move with the turn; the track must not add to that);
- a cut is still a cut, and a number for smoothing still fixes sigma.
dlib runs once per frame of both clips (78 frames, about 10 s); every test reuses those detections."""
import numpy as np
import pytest

from clipinverter_core.align import smooth as S
from clipinverter_core.align import track as T
from clipinverter_core.align import video as V
from conftest import report_figure
from synthetic_clips import talking_head, wobble, worst_stray

import dlib  # noqa: F401 - requirements.txt (dlib-bin): imported for real, no skip

REST = slice(0, 10)  # the fast clip's first rest
SIGMAS = (0.0, 2.0, 3.0, 5.0, 8.0)


@pytest.fixture(scope="module")
def clips():
    out = {}
    for kind in ("slow", "fast"):
        frames, poses = talking_head(kind)
        detections, cuts = V.scan_frames(frames)
        assert all(detections) and not cuts.any(), kind  # the clips are as designed: a face in every frame
        out[kind] = poses, detections, cuts
    return out


def quads(clip, smoothing) -> np.ndarray:
    _, detections, cuts = clip
    plan = V.plan_clip(detections, cuts, 0, "error", smoothing=smoothing)
    return np.stack([p[0].quad for p in plan])


def test_auto_holds_a_slow_clip_still(clips):
    poses = clips["slow"][0]
    got = {s: wobble(quads(clips["slow"], s), poses) for s in (*SIGMAS, "auto")}
    report_figure("track steadiness (percent of the quad's width)",
                  "slow clip, wobble: " + ", ".join(f"{s}: {100 * w:.3f}" for s, w in got.items()))
    assert got["auto"] <= 0.003, got
    assert got["auto"] <= got[0.0] / 5 and got["auto"] <= got[2.0], got


def test_auto_follows_a_fast_turn_without_lag(clips):
    poses = clips["fast"][0]
    stray = {s: worst_stray(quads(clips["fast"], s), poses, REST) for s in (*SIGMAS, "auto")}
    shake = {s: wobble(quads(clips["fast"], s), poses) for s in (0.0, "auto")}
    report_figure("track steadiness (percent of the quad's width)",
                  "fast clip, worst stray: " + ", ".join(f"{s}: {100 * w:.2f}" for s, w in stray.items())
                  + f"; wobble per frame {100 * shake[0.0]:.3f}, auto {100 * shake['auto']:.3f}")
    assert stray["auto"] <= stray[0.0] + 0.005, stray
    assert stray[5.0] > stray[0.0] + 0.005  # the clip is fast enough that a wide fixed sigma would lag
    assert shake["auto"] < shake[0.0]


def test_a_cut_is_still_a_cut(clips):
    poses_s, det_s, _ = clips["slow"]
    _, det_f, _ = clips["fast"]
    cuts = np.zeros(len(det_s) + len(det_f), bool)
    cuts[len(det_s)] = True
    plan = V.plan_clip(det_s + det_f, cuts, 0, "error")
    joined = np.stack([p[0].quad for p in plan])
    np.testing.assert_array_equal(joined[:len(det_s)], quads(clips["slow"], "auto"))
    np.testing.assert_array_equal(joined[len(det_s):], quads(clips["fast"], "auto"))  # nothing reaches across


def test_a_number_fixes_sigma_and_zero_is_per_frame(clips):
    _, detections, cuts = clips["fast"]
    raw = np.stack([T.ffhq_quad(d[0].landmarks) for d in detections])
    np.testing.assert_allclose(quads(clips["fast"], 0.0), raw, atol=1e-9)
    t = np.arange(len(detections), dtype=np.float64)
    params = np.stack([T.quad_params(q) for q in raw])
    fixed = np.stack([T.params_quad(p) for p in S.fixed_path(t, params, t, 3.0)])
    np.testing.assert_allclose(quads(clips["fast"], 3.0), fixed, atol=1e-9)


# --------------------------------------------------------------------------- the smoother alone, no detector

def _ramp(n_rest=20, n_move=10, speed=1.0, noise=0.2, seed=0):
    """A 1-D path at rest, then moving at `speed` a frame, then at rest, with white noise."""
    k = np.clip(np.arange(2 * n_rest + n_move) - n_rest + 1, 0, n_move) * speed
    rng = np.random.default_rng(seed)
    return np.arange(len(k), dtype=np.float64), k, k + noise * rng.standard_normal(len(k))


def test_the_noise_is_measured_from_the_samples_despite_the_motion():
    t, _, y = _ramp(n_rest=200, n_move=40, noise=0.2)
    assert S.noise_std(t, y[:, None])[0] == pytest.approx(0.2, rel=0.15)
    assert S.noise_std(t[:4], y[:4, None]) is None  # too few samples to measure: the fixed fallback


def test_auto_widens_at_rest_and_narrows_where_the_motion_bends():
    rest, corners = np.r_[3:17, 33:47], [19, 20, 29, 30]
    chosen, rest_err, worst, worst_fixed = [], [], [], []
    for seed in range(5):
        t, truth, y = _ramp(seed=seed)
        path, sigma = S.adaptive_path(t, y[:, None], t)
        chosen.append(sigma)
        err = path[:, 0] - truth
        rest_err.append(np.sqrt((err[rest] ** 2).mean()))
        worst.append(np.abs(err).max())
        worst_fixed.append(np.abs(S.fixed_path(t, y[:, None], t, 6.0)[:, 0] - truth).max())
    chosen = np.stack(chosen)
    assert np.median(chosen[:, rest]) >= 4 and np.median(chosen[:, corners]) <= 3.5, chosen
    assert np.mean(rest_err) < 0.75 * 0.2  # at rest: averages some of the noise (std 0.2) away
    assert np.mean(worst) < 0.5 * np.mean(worst_fixed)  # at the bends: half the error of a wide fixed sigma
