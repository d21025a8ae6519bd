"""ComfyUI model management for the CLIPInverter networks, and the batch loop every node runs.

The networks sit in one nn.Module that a comfy ModelPatcher owns, so `load_models_gpu` loads them on the
device, makes room for them (unloading diffusion models when it must) and offloads them when others need the
memory, exactly as it does for core models. Work runs one batch item at a time: a progress bar step and a
cancel check after each, and an out-of-memory error frees everything else and retries the item once.
"""
from __future__ import annotations

import logging

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import torch
from torch import nn

from ..clipinverter_core.errors import CheckpointError
from ..clipinverter_core.pipeline import CLIPInverter

log = logging.getLogger("clipinverter")

# Rough working memory of one batch item beyond the weights: the generator's widest feature maps at full
# size (64 channels at size x size) with room for a few of them alive at once (the factor 8).
ACTIVATION_CHANNELS = 64
LIVE_MAPS = 8
EVERYTHING = 1e30  # bytes asked of free_memory to unload every other model before the out-of-memory retry


class InverterModules(nn.Module):
    """Every network of one CLIPInverter as children of one module (what the ModelPatcher moves)."""

    def __init__(self, inverter: CLIPInverter):
        super().__init__()
        self.encoder, self.adapter, self.generator = inverter.encoder, inverter.adapter, inverter.generator
        try:
            self.clip = inverter.clip  # built now, so that ComfyUI counts it and moves it with the rest
        except CheckpointError:  # a bundle without CLIP (only nodes that need no embedding work with it)
            self.clip = None


class LoadedInverter:
    """What a CLIPINVERTER_MODEL socket carries: the core model and the ModelPatcher that places it."""

    def __init__(self, inverter: CLIPInverter, load_device: torch.device, offload_device: torch.device,
                 name: str = ""):
        self.inverter, self.name = inverter, name
        self.modules = InverterModules(inverter)
        self.patcher = comfy.model_patcher.ModelPatcher(self.modules, load_device=load_device,
                                                        offload_device=offload_device)

    @property
    def device(self) -> torch.device:
        return self.patcher.load_device

    def item_memory(self) -> int:
        """Working memory of one batch item, in bytes (an estimate, for free_memory)."""
        return ACTIVATION_CHANNELS * LIVE_MAPS * self.inverter.size ** 2 * self.inverter.dtype.itemsize

    def on_device(self) -> CLIPInverter:
        """Loads (or keeps) the networks on the load device and returns the core model pointed at it."""
        # force_full_load: our modules have no ComfyUI weight casting, so they must sit wholly on one device
        mm.load_models_gpu([self.patcher], memory_required=self.item_memory(), force_full_load=True)
        inv = self.inverter
        inv.device = self.patcher.load_device
        return inv


def run_items(model: LoadedInverter, n: int, work):
    """Calls work(inverter, i) for i in range(n) with a progress bar, the cancel check between items and one
    retry after freeing memory on out-of-memory. Returns the list of results."""
    pbar = comfy.utils.ProgressBar(n)
    out = []
    for i in range(n):
        mm.throw_exception_if_processing_interrupted()
        inv = model.on_device()
        try:
            out.append(work(inv, i))
        except mm.OOM_EXCEPTION as e:
            if not isinstance(e, torch.OutOfMemoryError):
                raise
            log.warning("clipinverter: out of memory on item %d; freeing other models and retrying once", i)
            mm.free_memory(EVERYTHING, model.device, keep_loaded=[])
            mm.soft_empty_cache(True)
            out.append(work(model.on_device(), i))
        pbar.update(1)
    return out
