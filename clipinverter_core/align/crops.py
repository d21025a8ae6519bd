"""The alignment API: photos in any format -> (B, 3, H, W) unit tensors -> aligned crops and their Alignment."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from .detect import Face, FaceFilter, FaceNotFoundError, detect_faces, order_faces
from .geometry import Alignment, FaceAlignment, crop_corners
from .warp import align_face


def to_unit_tensor(image, device=None) -> torch.Tensor:
    """A photo as (B, 3, H, W) float in [0, 1]: a PIL image (any mode, EXIF orientation applied), an
    (H, W[, C]) uint8/uint16 array, or a tensor (B, C, H, W) / (C, H, W) in [0, 1] with C in 1, 3, 4."""
    from PIL import Image

    from ..images import pil_to_rgb

    if isinstance(image, Image.Image):
        image = np.asarray(pil_to_rgb(image))
    if isinstance(image, np.ndarray):
        a = image
        scale = 65535.0 if a.dtype == np.uint16 else 255.0 if a.dtype == np.uint8 else 1.0
        t = torch.from_numpy(np.array(a, dtype=np.float32)) / scale
        t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    elif isinstance(image, torch.Tensor):
        t = image if image.ndim == 4 else image[None]
        if not t.is_floating_point():
            t = t.float() / (65535.0 if t.dtype == torch.int32 else 255.0)
    else:
        raise InputError(f"expected a PIL image, an array or a tensor, got {type(image).__name__}")
    if t.ndim != 4 or t.shape[1] not in (1, 3, 4):
        raise InputError(f"expected a photo of shape (B, 3, H, W), got {tuple(t.shape)}")
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    elif t.shape[1] == 4:  # composite on white, as load_image does
        t = t[:, :3] * t[:, 3:] + (1 - t[:, 3:])
    return t.to(device) if device is not None else t


def _resize(image: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(image, size=hw, mode="bilinear", align_corners=False, antialias=True)


def passthrough_crop(b: int, image: torch.Tensor, size: int) -> tuple[torch.Tensor, FaceAlignment]:
    """The whole photo (3, H, W), resized to size x size, as the crop of photo `b` where no face was found."""
    _, h, w = image.shape
    sx, sy = w / size, h / size
    matrix = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
    return _resize(image[None].float(), (size, size))[0].clamp(0, 1).to(image.dtype), \
        FaceAlignment(b, None, size, (h, w), matrix)


def align(image, size: int = 256, face_index: int | str = 0, on_missing: str = "error",
          faces: list[list[Face]] | None = None, face_order: str = "largest first", keep: FaceFilter = FaceFilter()
          ) -> tuple[torch.Tensor, Alignment]:
    """Aligned face crops of a photo or a batch of photos.

    image: see `to_unit_tensor`; a tensor stays on its device. size: 256 for the encoder, 1024 to look at.
    face_index: which face of each photo, 0 = the first in `face_order` (the largest by default); 'all' = every
    face of every photo. face_order: 'largest first', 'left to right' or 'top to bottom' (detect.FACE_ORDERS).
    on_missing: 'error' raises FaceNotFoundError; 'passthrough' uses the whole photo, resized, instead.
    faces: detections to reuse (one list per photo), e.g. from an earlier call's `detect_faces`; else the detections
    that `keep` accepts (detect.FaceFilter: a minimum detector score and size).
    Returns (N, 3, size, size) in [0, 1] and the Alignment that `paste_back` needs."""
    if not isinstance(size, int) or size < 8:
        raise InputError(f"the crop size must be a whole number of pixels, 8 or more, not {size!r}")
    if on_missing not in ("error", "passthrough"):
        raise InputError(f"on_missing must be 'error' or 'passthrough', not {on_missing!r}")
    if face_index != "all" and (not isinstance(face_index, int) or face_index < 0):
        raise InputError(f"face index must be 0, 1, ... or 'all', not {face_index!r}")
    order_faces([], face_order)  # an unknown order is an error before any detection runs
    images = to_unit_tensor(image)
    crops, entries = [], []
    for b, photo in enumerate(images):
        found = order_faces(faces[b] if faces is not None else detect_faces(photo, keep), face_order)
        if not found:
            if on_missing == "passthrough":
                crop, entry = passthrough_crop(b, photo, size)
                crops.append(crop)
                entries.append(entry)
                continue
            where = f"photo {b} of the batch" if len(images) > 1 else "the photo"
            raise FaceNotFoundError(f"no face found in {where} (the detector needs a frontal face of "
                                    "about 80 px or more, 40 px in photos up to 800 px)")
        if face_index == "all":
            chosen = list(enumerate(found))
        elif face_index < len(found):
            chosen = [(face_index, found[face_index])]
        else:
            raise InputError(f"face index {face_index} asked for, but the photo has {len(found)} face(s): "
                             f"use 0..{len(found) - 1}")
        for k, face in chosen:
            crop, matrix = align_face(photo, face.landmarks, size)
            crops.append(crop)
            entries.append(FaceAlignment(b, k, size, tuple(photo.shape[1:]), matrix,
                                         quad=crop_corners(matrix, size), landmarks=face.landmarks))
    return torch.stack(crops), Alignment(entries, len(images))
