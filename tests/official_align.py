"""Test oracle: the official preprocessing's crop (CLIPInverter `align_faces_parallel.align_face`, the FFHQ
recipe) redone step by step with PIL, numpy and scipy, as the official code computes it: shrink with PIL
Lanczos, crop, reflect-pad + blur in float32 numpy rounded back to uint8, PIL QUAD transform (bilinear),
Lanczos resize when output_size < transform_size. Landmarks come in from the caller, so the same face is
compared. Written for the tests; it is the reference path of the alignment benchmark too.
"""
from __future__ import annotations

import numpy as np
import scipy.ndimage
from PIL import Image


def official_landmarks(rgb_uint8: np.ndarray) -> np.ndarray | None:
    """The official landmark step: detector with one upsampling, the LAST detection, 68 points."""
    from clipinverter_core.align import _dlib_models

    dlib, detector, predictor = _dlib_models()
    found = list(detector(rgb_uint8, 1))
    if not found:
        return None
    shape = predictor(rgb_uint8, found[-1])
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def official_quad(lm: np.ndarray) -> tuple[np.ndarray, float]:
    eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
    eye_avg = (eye_l + eye_r) / 2
    e2e = eye_r - eye_l
    e2m = (lm[48] + lm[54]) / 2 - eye_avg
    x = e2e - np.flipud(e2m) * [-1, 1]
    x = x / np.hypot(*x) * max(np.hypot(*e2e) * 2.0, np.hypot(*e2m) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + e2m * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y]), float(np.hypot(*x) * 2)


def official_align(img: Image.Image, lm: np.ndarray, output_size: int = 256, transform_size: int = 256) -> Image.Image:
    quad, qsize = official_quad(np.asarray(lm, dtype=np.float64))

    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:
        size = (int(np.rint(img.size[0] / shrink)), int(np.rint(img.size[1] / shrink)))
        img = img.resize(size, Image.LANCZOS)
        quad /= shrink
        qsize /= shrink

    border = max(int(np.rint(qsize * 0.1)), 3)
    lo, hi = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    crop = (max(lo[0] - border, 0), max(lo[1] - border, 0), min(hi[0] + border, img.size[0]),
            min(hi[1] + border, img.size[1]))
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad -= crop[0:2]

    lo, hi = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    pad = (max(-lo[0] + border, 0), max(-lo[1] + border, 0), max(hi[0] - img.size[0] + border, 0),
           max(hi[1] - img.size[1] + border, 0))
    if max(pad) > border - 4:
        pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
        a = np.pad(np.float32(img), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")
        h, w, _ = a.shape
        yy, xx, _ = np.ogrid[:h, :w, :1]
        mask = np.maximum(1.0 - np.minimum(np.float32(xx) / pad[0], np.float32(w - 1 - xx) / pad[2]),
                          1.0 - np.minimum(np.float32(yy) / pad[1], np.float32(h - 1 - yy) / pad[3]))
        sigma = qsize * 0.02
        a += (scipy.ndimage.gaussian_filter(a, [sigma, sigma, 0]) - a) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
        a += (np.median(a, axis=(0, 1)) - a) * np.clip(mask, 0.0, 1.0)
        img = Image.fromarray(np.uint8(np.clip(np.rint(a), 0, 255)), "RGB")
        quad += pad[:2]

    img = img.transform((transform_size, transform_size), Image.QUAD, (quad + 0.5).flatten(), Image.BILINEAR)
    if output_size < transform_size:
        img = img.resize((output_size, output_size), Image.LANCZOS)
    return img
