"""Synthetic clips for the tracking tests: a still photo moved, turned and scaled along a known smooth path, so
that the true FFHQ quad of every frame is known (the photo's own quad carried by the frame's transform)."""
from __future__ import annotations

import numpy as np
import torch


def path_matrix(t: float, n: int, centre: np.ndarray, side: int, scale: float,
                shift: float = 0.08, turn_deg: float = 10.0) -> np.ndarray:
    """(3, 3) photo pixel -> frame pixel at frame t of n: the face centre carried around the frame's centre on a
    Lissajous path of `shift` x side, turned by up to `turn_deg`, at `scale`."""
    phase = 2 * np.pi * t / n
    a = np.deg2rad(turn_deg) * np.sin(phase)
    offset = side * shift * np.array([np.sin(phase), np.sin(2 * phase)])
    r = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    target = np.array([side / 2 - 0.5, side / 2 - 0.5]) + offset
    m = np.eye(3)
    m[:2, :2], m[:2, 2] = r, target - r @ centre
    return m


def render(photo: torch.Tensor, matrices: list[np.ndarray], side: int) -> torch.Tensor:
    """(T, 3, side, side): the photo (1, 3, H, W) in [0, 1] warped by each matrix, grey outside."""
    from kornia.geometry.transform import warp_affine

    m = torch.from_numpy(np.stack(matrices)[:, :2]).float()
    src = photo.expand(len(matrices), -1, -1, -1) - 0.5
    return warp_affine(src, m, (side, side), mode="bilinear", padding_mode="zeros", align_corners=True) + 0.5


def carry(quad: np.ndarray, m: np.ndarray) -> np.ndarray:
    return (m @ np.c_[quad, np.ones(len(quad))].T)[:2].T


SIDE, PATH_FRAMES, CUT_FRAMES = 192, 60, 8  # frame side; frames of the moving photo; frames after the cut
SCALE = 0.75                                  # the astronaut's face at 3/4 size: a crop about 130 px wide
COVERED = range(40, 43)                       # frames whose face is covered by a grey card


def tracking_clip(photo: torch.Tensor, quad: np.ndarray, background: torch.Tensor):
    """The test clip: the photo (1, 3, H, W) moved along the path for PATH_FRAMES frames (the face covered in
    COVERED), then a cut to another photo (`background`, of the photo's size, with the photo's head and shoulders
    mirrored and their colours rolled: another face at another place) moving a little for CUT_FRAMES frames. Returns (frames (T, 3, SIDE, SIDE), true quads (T, 4, 2))."""
    centre = quad.mean(0)
    ms = [path_matrix(t, PATH_FRAMES, centre, SIDE, SCALE) for t in range(PATH_FRAMES)]
    first = render(photo, ms, SIDE)
    for t in COVERED:
        c = carry(quad, ms[t]).mean(0).round().astype(int)
        first[t, :, c[1] - 45:c[1] + 45, c[0] - 45:c[0] + 45] = 0.5
    w = photo.shape[-1]
    mirror = np.array([[-1, 0, w - 1], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    other = background.clone()  # another photo: the head and shoulders mirrored, colours rolled, on it
    h = photo.shape[-2]
    head = photo[..., : int(0.6 * h), int(0.12 * w): int(0.74 * w)].flip(-1).roll(1, dims=1)
    other[..., : head.shape[-2], w - int(0.74 * w): w - int(0.12 * w)] = head
    place = np.array([[1, 0, -0.22 * SIDE], [0, 1, 0.1 * SIDE], [0, 0, 1]])
    centre2 = (mirror @ np.r_[centre, 1])[:2]
    ms2 = [place @ path_matrix(t, 4 * CUT_FRAMES, centre2, SIDE, SCALE * 0.9) for t in range(CUT_FRAMES)]
    second = render(other, ms2, SIDE)
    mirrored_quad = carry(quad, mirror)[[3, 2, 1, 0]]  # the corners' roles swap left for right
    truth = [carry(quad, m) for m in ms] + [carry(mirrored_quad, m) for m in ms2]
    return torch.cat([first, second]), np.stack(truth)
