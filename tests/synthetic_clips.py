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


# --- video files (PyAV) ---------------------------------------------------------------------------------------------
SAMPLE_RATE = 16000  # of the clips' sound track


def moving_astronaut(frames: int, period: int = 60) -> torch.Tensor:
    """(frames, 3, SIDE, SIDE) in [0, 1]: scikit-image's astronaut along the path (the face about 130 px wide)."""
    from skimage import data

    from clipinverter_core import align as A

    astronaut = data.astronaut()
    centre = A.ffhq_quad(A.detect_faces(astronaut)[0].landmarks).mean(0)
    ms = [path_matrix(t, period, centre, SIDE, SCALE) for t in range(frames)]
    return render(A.to_unit_tensor(astronaut), ms, SIDE).clamp(0, 1)


def write_clip(path: str, frames: torch.Tensor, fps: int) -> None:
    """Frames (T, 3, H, W) in [0, 1] as H.264, with a 440 Hz AAC tone of the same length."""
    import av

    with av.open(path, "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = frames.shape[-1], frames.shape[-2], "yuv420p"
        v.options = {"crf": "10"}
        a = out.add_stream("aac", rate=SAMPLE_RATE)
        for t, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray((f.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), "rgb24")
            frame.pts = t
            out.mux(v.encode(frame))
        out.mux(v.encode())
        n = SAMPLE_RATE * len(frames) // fps
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / SAMPLE_RATE)).astype(np.float32)[None]
        for k in range(0, n, 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, k:k + 1024]), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = SAMPLE_RATE, k
            out.mux(a.encode(chunk))
        out.mux(a.encode())


def read_clip(path: str) -> tuple[dict, np.ndarray]:
    """({codec, rate, size, audio codecs, audio_s}, frames (T, H, W, 3) uint8) of a video file."""
    import av

    with av.open(path) as c:
        v = c.streams.video[0]
        info = {"codec": v.codec_context.name, "rate": v.average_rate, "size": (v.width, v.height),
                "audio": [s.codec_context.name for s in c.streams.audio]}
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(path) as c:
        info["audio_s"] = sum(f.samples for f in c.decode(audio=0)) / SAMPLE_RATE if info["audio"] else 0
    return info, np.stack(frames)


# --- talking heads with a known path: the track's steadiness and lag (test_track_adaptive.py) -------------------
CANVAS = (480, 640)   # (H, W) of the talking-head clips, as the issue measured them
HEAD_SCALE = 1.0      # the astronaut at her own size: her face about 90 px wide, a quad about 175 px
FACE_WIDTH = 90.0 * HEAD_SCALE  # her detector box's width in the frame, in pixels


def _pose(x: float, y: float, deg: float, centre: np.ndarray) -> np.ndarray:
    """(3, 3) photo pixel -> canvas pixel: the photo's point `centre` put at (x, y), turned by deg, at HEAD_SCALE."""
    a = np.deg2rad(deg)
    r = HEAD_SCALE * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    m = np.eye(3)
    m[:2, :2], m[:2, 2] = r, np.array([x, y]) - r @ centre
    return m


def head_path(kind: str, centre: np.ndarray) -> list[np.ndarray]:
    """The photo's pose in each frame. 'slow': 48 frames (2 s at 24 fps) of a talking head drifting a fifth of the
    canvas across, nodding once and turning up to 6 degrees. 'fast': 10 frames at rest, 10 frames panning 5% of
    the face's width a frame while turning 15 degrees (from -7.5 to 7.5: HOG finds upright faces to about 10 degrees
    either way), 10 frames at rest again."""
    h, w = CANVAS
    if kind == "slow":
        return [_pose(w * (0.4 + 0.2 * t / 47), h * (0.5 + 0.01 * np.sin(2 * np.pi * t / 48)),
                      6 * np.sin(2 * np.pi * t / 96), centre) for t in range(48)]
    if kind == "fast":
        step = 0.05 * FACE_WIDTH
        moving = np.clip(np.arange(30) - 9, 0, 10)  # frames moved so far: 0 x 10, 1..10, 10 x 10
        return [_pose(w * 0.42 + step * k, h * 0.5, 1.5 * k - 7.5, centre) for k in moving]
    raise ValueError(kind)


def talking_head(kind: str, noise: float = 0.05, seed: int = 0):
    """(frames (T, 3, H, W) in [0, 1], poses (T, 3, 3)): scikit-image's astronaut on the coffee photo along
    head_path(kind), with Gaussian sensor noise of std `noise` drawn anew in every frame."""
    from skimage import data

    from clipinverter_core import align as A

    astronaut = data.astronaut()
    centre = A.ffhq_quad(A.detect_faces(astronaut)[0].landmarks).mean(0)
    poses = head_path(kind, centre)
    photo = A.to_unit_tensor(astronaut)
    frames = render_on(photo, poses, CANVAS)
    g = torch.Generator().manual_seed(seed)
    frames = (frames + noise * torch.randn(frames.shape, generator=g)).clamp(0, 1)
    return frames, np.stack(poses)


def render_on(photo: torch.Tensor, matrices: list[np.ndarray], size: tuple[int, int]) -> torch.Tensor:
    """(T, 3, H, W): the photo (1, 3, h, w) warped by each matrix onto a still background (the coffee photo)."""
    import torch.nn.functional as F
    from kornia.geometry.transform import warp_affine
    from skimage import data

    from clipinverter_core import align as A

    m = torch.from_numpy(np.stack(matrices)[:, :2]).float()
    ones = torch.ones_like(photo[:, :1])
    warped = warp_affine(torch.cat([photo, ones], 1).expand(len(matrices), -1, -1, -1), m, size,
                         mode="bilinear", padding_mode="zeros", align_corners=True)
    back = F.interpolate(A.to_unit_tensor(data.coffee()), size=size, mode="area")
    alpha = warped[:, 3:]
    return warped[:, :3] * alpha + back * (1 - alpha)


def in_photo(quads: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """(T, 4, 2): each frame's quad carried back into the photo's own pixels, where a perfect track stands still."""
    return np.stack([carry(q, np.linalg.inv(m)) for q, m in zip(quads, poses)])


def wobble(quads: np.ndarray, poses: np.ndarray) -> float:
    """The RMS frame-to-frame motion of the quad's corners in the photo's pixels, as a fraction of its width."""
    p = in_photo(quads, poses)
    width = np.hypot(*(p[:, 3] - p[:, 0]).T).mean()
    return float(np.sqrt((np.linalg.norm(np.diff(p, axis=0), axis=-1) ** 2).mean()) / width)


def worst_stray(quads: np.ndarray, poses: np.ndarray, rest: slice) -> float:
    """The farthest any corner strays from its mean place over the `rest` frames (in the photo's pixels), as a
    fraction of the quad's width."""
    p = in_photo(quads, poses)
    home = p[rest].mean(0)
    return float(np.linalg.norm(p - home, axis=-1).max() / np.hypot(*(home[3] - home[0])))
