"""Step 2, geometry: the FFHQ recipe's oriented square (the quad) from 68 landmarks, the matrices between
aligned-crop pixels and photo pixels, and the records of where each crop sits (FaceAlignment, Alignment).

Coordinates are pixel indices: pixel (i, j) has its centre at x = i, y = j. A `FaceAlignment.matrix` maps
homogeneous aligned-crop pixels (x, y, 1) to source-photo pixels, so paste-back is its warp.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# dlib's 68-point layout (iBUG 300-W): the slices the recipe uses.
LEFT_EYE, RIGHT_EYE = slice(36, 42), slice(42, 48)
MOUTH_LEFT, MOUTH_RIGHT = 48, 54

# The recipe's constants (FFHQ): the crop's half-width is the larger of 2x the eye distance and 1.8x the
# eye-to-mouth distance; its centre sits 0.1 of the eye-to-mouth vector below the eye midpoint.
EYE_SPAN, MOUTH_SPAN, CENTRE_SHIFT = 2.0, 1.8, 0.1
BORDER_FRACTION, MIN_BORDER = 0.1, 3      # crop margin around the quad
PAD_FRACTION, BLUR_FRACTION = 0.3, 0.02   # reflected margin, and the blur sigma of that margin
LANCZOS_LOBES = 3                         # PIL's ANTIALIAS/LANCZOS support


@dataclass(frozen=True)
class FaceAlignment:
    """How one aligned crop sits in its photo: enough to paste an edited crop back."""
    batch_index: int               # which photo of the input batch
    face_index: int | None         # rank by size in that photo (0 = largest); None for a pass-through
    size: int                      # side of the aligned crop the matrix refers to
    source_size: tuple[int, int]   # (H, W) of the photo
    matrix: np.ndarray             # (3, 3) float64: aligned pixel (x, y, 1) -> photo pixel
    quad: np.ndarray | None = None         # (4, 2) corners in the photo: top-left, bottom-left, bottom-right, top-right
    landmarks: np.ndarray | None = None    # (68, 2) in the photo
    status: str = "detected"               # in a clip: 'detected', 'interpolated' or 'held' (align/track.py)

    @property
    def passthrough(self) -> bool:
        return self.face_index is None

    def matrix_for(self, size: int) -> np.ndarray:
        """The matrix for a crop of another side (an edited 1024 crop of a 256 alignment)."""
        s = self.size / size
        rescale = np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5], [0, 0, 1]])
        return self.matrix @ rescale


@dataclass(frozen=True)
class Alignment:
    """Every aligned crop of one `align` call, in the order of the crops."""
    faces: list[FaceAlignment] = field(default_factory=list)
    batch_size: int = 1

    def __len__(self) -> int:
        return len(self.faces)


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The recipe's oriented square, (4, 2): top-left, bottom-left, bottom-right, top-right, in pixels."""
    lm = np.asarray(landmarks, dtype=np.float64)
    eye_left, eye_right = lm[LEFT_EYE].mean(0), lm[RIGHT_EYE].mean(0)
    eye_mid = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (lm[MOUTH_LEFT] + lm[MOUTH_RIGHT]) / 2 - eye_mid
    # x: the horizontal axis, halfway between the eye line and the eye-to-mouth line turned 90 degrees.
    x = eye_to_eye + np.array([eye_to_mouth[1], -eye_to_mouth[0]])
    x *= max(np.hypot(*eye_to_eye) * EYE_SPAN, np.hypot(*eye_to_mouth) * MOUTH_SPAN) / np.hypot(*x)
    y = np.array([-x[1], x[0]])
    c = eye_mid + eye_to_mouth * CENTRE_SHIFT
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def _quad_matrix(quad: np.ndarray, size: int) -> np.ndarray:
    """Aligned pixel -> quad pixel, as PIL's QUAD transform samples: pixel centres at (i + 0.5) / size."""
    tl, bl, _, tr = quad
    ex, ey = (tr - tl) / size, (bl - tl) / size
    origin = tl + 0.5 * (ex + ey)
    return np.array([[ex[0], ey[0], origin[0]], [ex[1], ey[1], origin[1]], [0, 0, 1]])


def crop_corners(matrix: np.ndarray, size: int) -> np.ndarray:
    """The outer corners of a size x size crop in the photo, (4, 2): top-left, bottom-left, bottom-right, top-right."""
    lo, hi = -0.5, size - 0.5
    return (matrix @ np.array([[lo, lo, hi, hi], [lo, hi, hi, lo], [1, 1, 1, 1]]))[:2].T

