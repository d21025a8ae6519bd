"""The IMAGE boundary: ComfyUI's IMAGE (B, H, W, C) float in [0, 1] to and from the core's pictures (B, 3, H, W).

Every node converts here, so the layouts meet in one place. Inputs stay where ComfyUI keeps them (the host) and
are views, not copies; outputs go to ComfyUI's intermediate device in float32, as core nodes hand them on.
"""
from __future__ import annotations

import comfy.model_management as mm
import torch

from ..clipinverter_core.images import tensor_to_encoder_input


def to_core(image: torch.Tensor) -> torch.Tensor:
    """ComfyUI IMAGE [B, H, W, C] -> the core's (B, 3, H, W), a view in the IMAGE's dtype (an alpha channel is
    dropped)."""
    return image.movedim(-1, 1)[:, :3]


def to_comfy(pictures: torch.Tensor) -> torch.Tensor:
    """The core's pictures (B, 3, H, W) in [0, 1] -> ComfyUI IMAGE [B, H, W, 3] float32 on the intermediate
    device."""
    return as_output(comfy_layout(pictures))


def comfy_layout(pictures: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> [B, H, W, 3], a view on the pictures' device: for work whose chunks are gathered into one
    host IMAGE, which is then contiguous in ComfyUI's layout, as Load Image makes them (then `as_output`)."""
    return pictures.movedim(1, -1)


def as_output(t: torch.Tensor) -> torch.Tensor:
    """An IMAGE [B, H, W, C] or MASK [B, H, W] as nodes hand them on: float32 on the intermediate device."""
    return t.to(mm.intermediate_device(), torch.float32)


def to_encoder_input(image: torch.Tensor) -> torch.Tensor:
    """ComfyUI IMAGE [B, H, W, 3] in [0, 1] -> the encoder's (B, 3, 256, 256) in [-1, 1], on the host where
    ComfyUI's IMAGE tensors live (checked for NaN there). The nodes convert one chunk at a time, so a long
    video is never copied whole."""
    return tensor_to_encoder_input(to_core(image).float())
