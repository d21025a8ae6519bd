"""Pictures in and out: files and tensors to the encoder's input, generator output to pixels.

The encoder takes (B, 3, 256, 256) RGB in [-1, 1]. As the official code does (torchvision Resize on a PIL
image, ToTensor, Normalize(0.5, 0.5)), other sizes are resized to 256x256 with PIL's antialiased bilinear
filter; a 256x256 picture is used as is.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError
from .fileio import atomic_output

ENCODER_SIZE = 256


def load_image(path: str):
    """A picture file as an 8-bit RGB PIL image, upright (EXIF orientation applied)."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError:
        raise InputError(f"no image at {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise InputError(f"{path}: not a readable image ({e})") from None
    return pil_to_rgb(img)


def pil_to_rgb(img):
    """Any PIL image as 8-bit RGB, upright: EXIF orientation applied, 16-bit scaled, alpha on white."""
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float64)
        a = a / (65535.0 if a.max() > 255 else 255.0)
        img = Image.fromarray(np.round(a * 255).astype(np.uint8)).convert("RGB")
    elif img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba).convert("RGB")
    else:
        img = img.convert("RGB")
    return img


def pil_to_encoder_input(img) -> torch.Tensor:
    """PIL RGB image -> (1, 3, 256, 256) in [-1, 1], exactly as the official transforms."""
    from PIL import Image

    if img.size != (ENCODER_SIZE, ENCODER_SIZE):
        img = img.resize((ENCODER_SIZE, ENCODER_SIZE), Image.BILINEAR)
    return uint8_to_encoder_input(np.asarray(img.convert("RGB")))


def uint8_to_encoder_input(a: np.ndarray) -> torch.Tensor:
    """(H, W, 3) or (B, H, W, 3) uint8 at 256x256 -> (B, 3, 256, 256) in [-1, 1]."""
    t = torch.from_numpy(np.array(a, dtype=np.uint8))  # a writable copy
    if t.ndim == 3:
        t = t[None]
    return uint8_to_signed(t.permute(0, 3, 1, 2))


def tensor_to_encoder_input(images: torch.Tensor, size: int = ENCODER_SIZE) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 3, 256, 256) in [-1, 1] (antialiased bilinear resize when needed); `size`:
    another side (identity tuning's targets at the generator's)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise InputError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        raise InputError("the images hold NaN or infinite values")
    if images.shape[2:] != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return unit_to_signed(images.clamp(0, 1))


def unit_to_signed(images01: torch.Tensor) -> torch.Tensor:
    """Pictures in [0, 1] -> the encoder's [-1, 1], as the official Normalize(0.5, 0.5)."""
    return images01.sub(0.5).div(0.5)


def uint8_to_signed(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 pictures (any layout, any device) -> [-1, 1] in `dtype`; other tensors are returned as they are."""
    return unit_to_signed(images.to(dtype) / 255) if images.dtype == torch.uint8 else images


def generator_to_unit(image: torch.Tensor) -> torch.Tensor:
    """Generator output (B, 3, H, W) in about [-1, 1] -> [0, 1], clamped."""
    return ((image + 1) / 2).clamp(0, 1)


def unit_to_uint8(image01: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """The project's one quantiser, element by element: [0, 1] floats -> uint8, truncating, as ComfyUI's Save
    Image, its video output and the official tensor2im do. A tensor stays on its device (a GPU hands the host
    bytes, not floats); an array stays an array. Pixels that came from uint8 (k / 255 in float32) come back as k."""
    if isinstance(image01, np.ndarray):
        return unit_to_uint8(torch.from_numpy(image01)).numpy()
    return image01.mul(255).clamp_(0, 255).to(torch.uint8)


def save_png(path: str, hwc_uint8: np.ndarray) -> None:
    """Writes atomically: a temporary name in the same folder, renamed when complete."""
    from PIL import Image

    with atomic_output(path) as tmp:
        Image.fromarray(hwc_uint8).save(tmp, format="PNG")
