"""The track's smoother: each coordinate of a face's quad over time, fitted by a Gaussian-weighted local polynomial.

The nodes and the CLI see a whole clip before they cut a crop, so the smoother need not be causal: a zero-phase
kernel has no lag, where a causal filter (one-euro, Kalman) must trade jitter against lag. A local parabola
(degree-2 kernel regression) rather than an average is unbiased on motion at constant speed and acceleration, at
the ends of a shot too, and a frame without a detection simply has no sample (its quad is the fit there).

The width. A fixed sigma cannot suit every clip: a slow talking head wants a wide kernel, a fast turn a narrow
one (tests/test_track_adaptive.py, on clips with a known path: sigma 2 leaves a slow clip's corners wobbling 3x
more than sigma 8, and sigma 5 already strays 3.7x as far as per-frame alignment on a fast turn). `auto` chooses it per
frame by the intersection of confidence intervals (ICI; Katkovnik, "A new method for varying adaptive bandwidth
selection", IEEE TSP 1999): the fit at each width in BANDS, narrowest first, with its interval +-ICI_GAMMA x its
standard deviation; the widest width whose interval still meets every narrower one's wins. While the face moves
as a parabola would, the wider fits agree with the narrow ones and average more frames; where it turns, they
stop agreeing and the width stays small. The standard deviation of a fit is the noise's times the norm of its
weights (the fit is linear in the samples); the noise is measured on the clip itself, per coordinate, from the
second differences of consecutive detections (their median absolute deviation: motion barely moves it).

Measured (test_track_adaptive.py; percent of the quad's width): the slow clip's wobble 0.73 per frame, 0.17 at
sigma 2, 0.11 at sigma 3 (the old default), 0.12 auto; the fast clip's worst stray 1.20 per frame, 2.38 at sigma 3,
4.40 at sigma 5, 0.62 auto. One-euro filtering
forward and backward was the other candidate; ICI needs no speed threshold to tune and reuses the fit above.
"""
from __future__ import annotations

import numpy as np

KERNEL_REACH = 3.0    # the Gaussian is cut at this many sigmas
POLY_DEGREE = 2       # the local fit: a parabola
BANDS = (0.7, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)  # the widths `auto` chooses from (sigma, in frames)
ICI_GAMMA = 1.5       # the intervals' half-width in standard deviations; it trades a slow clip's wobble against
                      # the stray at a turn: measured 1.0 / 1.5 / 2.0, slow wobble 0.20 / 0.12 / 0.09%, fast stray
                      # 0.58 / 0.62 / 0.87% (per-frame 0.73% and 1.20%)
FEW_SAMPLES = 6       # a run with fewer detections than this has no measurable noise: it gets FALLBACK_SIGMA
FALLBACK_SIGMA = 2.0
NOISE_FLOOR = 1e-3    # pixels: exact (synthetic) detections still get intervals of some width


def local_fit(times: np.ndarray, values: np.ndarray, t0: float, sigma: float, degree: int = POLY_DEGREE
              ) -> tuple[np.ndarray, float] | None:
    """The Gaussian-weighted local polynomial fit of values (n, d) at sorted `times`, at t0: (the estimate (d,),
    the squared norm of its weights on the samples), or None when no sample lies within reach. Where the window
    holds too few samples for the degree, the degree drops (one sample: its value)."""
    reach = KERNEL_REACH * sigma
    lo, hi = np.searchsorted(times, t0 - reach), np.searchsorted(times, t0 + reach, side="right")
    if hi == lo:
        return None
    dt = (times[lo:hi] - t0) / sigma
    w = np.exp(-0.25 * dt ** 2)  # the square root of the Gaussian weight
    k = min(degree, hi - lo - 1)
    weights = np.linalg.pinv(np.vander(dt, k + 1, increasing=True) * w[:, None])[0] * w
    return weights @ values[lo:hi], float(weights @ weights)


def fixed_path(times: np.ndarray, values: np.ndarray, at: np.ndarray, sigma: float) -> np.ndarray:
    """The fit of width sigma at each of `at` (m,) -> (m, d). Sigma 0 (or one sample): the last sample at or
    before each time, no smoothing."""
    if sigma <= 0 or len(times) < 2:
        idx = np.clip(np.searchsorted(times, at, side="right") - 1, 0, len(times) - 1)
        return values[idx]
    out = np.empty((len(at), values.shape[1]))
    for i, t0 in enumerate(at):
        fit = local_fit(times, values, t0, sigma)
        out[i] = fit[0] if fit is not None else values[np.argmin(np.abs(times - t0))]
    return out


def noise_std(times: np.ndarray, values: np.ndarray) -> np.ndarray | None:
    """(d,) the detections' noise per coordinate, or None with fewer than FEW_SAMPLES of them. From the second
    differences of detections in three consecutive frames: for white noise of std s they have std s * sqrt(6)."""
    if len(times) < FEW_SAMPLES:
        return None
    consecutive = (times[2:] - times[:-2]) == 2
    second = (values[2:] - 2 * values[1:-1] + values[:-2])[consecutive]
    if len(second) < FEW_SAMPLES - 2:
        return None
    mad = np.median(np.abs(second - np.median(second, 0)), 0)
    return np.maximum(1.4826 * mad / np.sqrt(6), NOISE_FLOOR)


def adaptive_path(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`auto`: the fit at each of `at` with its width chosen there by ICI (the module's docstring). Returns
    ((m, d) the path, (m,) the chosen sigma per time)."""
    noise = noise_std(times, values)
    if noise is None:
        return fixed_path(times, values, at, FALLBACK_SIGMA), np.full(len(at), FALLBACK_SIGMA)
    out, chosen = np.empty((len(at), values.shape[1])), np.zeros(len(at))
    for i, t0 in enumerate(at):
        lower, upper = np.full(values.shape[1], -np.inf), np.full(values.shape[1], np.inf)
        for sigma in BANDS:
            fit = local_fit(times, values, t0, sigma)
            if fit is None:
                continue
            half = ICI_GAMMA * noise * np.sqrt(fit[1])
            lower, upper = np.maximum(lower, fit[0] - half), np.minimum(upper, fit[0] + half)
            if np.any(lower > upper):
                break
            out[i], chosen[i] = fit[0], sigma
        if chosen[i] == 0:  # no sample within the widest reach (a long gap): the nearest detection
            out[i] = values[np.argmin(np.abs(times - t0))]
    return out, chosen


def smooth(times: np.ndarray, values: np.ndarray, at: np.ndarray, smoothing: float | str) -> np.ndarray:
    """The path at `at` with `smoothing`: 'auto', or a fixed sigma in frames (0: none)."""
    if smoothing == "auto":
        return adaptive_path(times, values, at)[0]
    return fixed_path(times, values, at, float(smoothing))
