"""ComfyUI model management for the CLIPInverter networks, and the chunked batch loop every node runs.

The networks sit in one nn.Module that a comfy ModelPatcher owns, so `load_models_gpu` loads them on the
device, makes room for them (unloading diffusion models when it must) and offloads them when others need the
memory, exactly as it does for core models; a network a node adds for one run (Edit Metrics' ArcFace) gets a
ModelPatcher of its own (`companion`) and is loaded beside them. Work runs in chunks of batch items sized from
the free memory and the per-item estimate (clipinverter_core.memory), with a progress bar step and a cancel
check per chunk; an out-of-memory error frees the other models and halves the chunk, down to one item.
"""
from __future__ import annotations

import copy
import logging
from typing import Callable, Sequence

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import torch
from torch import nn

from ..clipinverter_core import devices
from ..clipinverter_core.errors import CheckpointError
from ..clipinverter_core.memory import item_bytes
from ..clipinverter_core.pipeline import CLIPInverter

log = logging.getLogger("clipinverter")

MAX_CHUNK = 32         # items per chunk at most: the GPU targets' largest batch; keeps the progress bar moving
FREE_FRACTION = 0.8    # of the free memory a chunk may plan to use (the estimate is rough)
EVERYTHING = 1e30      # bytes asked of free_memory: unload every other model before retrying smaller


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
        self.tunings: tuple = ()  # (Tuning, strength) pairs this model's patches carry, in order

    def with_tuning(self, tuning, strength: float = 1.0) -> "LoadedInverter":
        """The same networks with a tuned generator, the ComfyUI way: a clone of the ModelPatcher whose weight
        patches are the tuning's changes ("diff" patches, times `strength`), so the base weights stay loaded once
        and ComfyUI swaps the patches in and out as either model runs."""
        from ..clipinverter_core.tuning import check_base

        check_base(self.inverter, tuning)
        tuned = copy.copy(self)
        tuned.patcher = self.patcher.clone()
        patches = {f"generator.{k}": (d,) for k, d in tuning.deltas.items()}
        applied = tuned.patcher.add_patches(patches, strength)
        if len(applied) != len(patches):
            raise CheckpointError(f"{len(patches) - len(applied)} tuned tensor(s) do not fit this model's generator")
        tuned.tunings = self.tunings + ((tuning, strength),)
        return tuned

    @property
    def device(self) -> torch.device:
        return self.patcher.load_device

    def item_memory(self) -> int:
        """Working memory of one batch item, in bytes (an estimate from the networks' compute dtypes)."""
        return item_bytes(self.inverter)

    def on_device(self, items: int = 1, also: Sequence = ()) -> CLIPInverter:
        """Loads (or keeps) the networks, and the ModelPatchers `also` (see `companion`), on the load device, with
        room for `items` batch items, and returns the core model pointed at it."""
        # force_full_load: our modules have no ComfyUI weight casting, so they must sit wholly on one device
        mm.load_models_gpu([self.patcher, *also], memory_required=self.item_memory() * items, force_full_load=True)
        more = patch_the_rest(self.patcher)
        inv = self.inverter
        inv.device = self.patcher.load_device
        # the generator's fused form keeps buffers derived from its weights: after ComfyUI swapped weight patches
        # (a tuned clone of this model, or the base again), derive them from the weights now in place
        patched = getattr(self.modules, "current_weight_patches_uuid", None)
        if inv.generator is not None and (more or getattr(self.modules, "derived_for", None) != patched):
            inv.generator.refresh()
            self.modules.derived_for = patched
        return inv

    def chunk_size(self, n: int) -> int:
        """Items per chunk: as many as the free memory holds by the estimate, 1 to MAX_CHUNK."""
        free = mm.get_free_memory(self.device)
        return max(1, min(n, MAX_CHUNK, int(free * FREE_FRACTION) // max(self.item_memory(), 1)))


def patch_the_rest(patcher) -> int:
    """Applies the weight patches that ComfyUI's ModelPatcher.load left out; returns how many.

    Its load patches only the parameters of modules whose children hold none (`_load_list` skips a module with
    parameters of its own beside children that have theirs), so in the generator it leaves out every
    ModulatedConv2d's `weight` (beside its `modulation` layer) and every ToRGB's `bias` (beside its `conv`): 27 of
    a tuning's 94 tensors, the convolution weights among them. They are patched here the way the load patches
    the others (`patch_weight_to_device`: the weight backed up first, in the backup all clones share), so that
    unpatching (another clone's load, an unload) restores them with the rest. After a load every key the load
    patched is in the backup: a patched key that is not has not been applied."""
    rest = [key for key in patcher.patches if key not in patcher.backup]
    for key in rest:
        patcher.patch_weight_to_device(key, device_to=patcher.load_device)
    return len(rest)


def companion(net: nn.Module, model: LoadedInverter):
    """A ModelPatcher for another network a node runs beside the inverter (ArcFace), on the inverter's load and
    offload devices: pass it as run_chunks' `also`, and ComfyUI's model management loads it with the networks
    and offloads or drops it as it does theirs. `net` should sit on the offload device."""
    return comfy.model_patcher.ModelPatcher(net, load_device=model.patcher.load_device,
                                            offload_device=model.patcher.offload_device)


def run_chunks(model: LoadedInverter, n: int, work: Callable[[CLIPInverter, int, int], object],
               sink: Callable[[int, int, object], None] | None = None, also: Sequence = ()) -> list:
    """The batch loop of every node: calls work(inverter, start, stop) over [0, n) in chunks and returns the
    results, one per chunk, moved to the host (float32 tensors, in any nest of tuples, lists and dicts) once per
    chunk by `devices.to_host`. With `sink`, each host result goes to sink(start, stop, result) instead and
    nothing is kept (what `gather_chunks` does). `also`: ModelPatchers loaded with the networks (`companion`).

    `work` gets the networks on the load device and returns results on it; it must compute items independently
    (so a smaller chunk gives the same result). Before each chunk: the cancel check; after it: the progress bar,
    by its item count. The chunk starts at the size the free memory allows (`LoadedInverter.chunk_size`); an
    out-of-memory error (torch.OutOfMemoryError, or MPS's RuntimeError) frees the other models once and halves
    the chunk, down to one item, which then fails for real."""
    pbar = comfy.utils.ProgressBar(n)
    out, start, freed = [], 0, False
    size = model.chunk_size(n) if n else 1
    while start < n:
        mm.throw_exception_if_processing_interrupted()
        stop = min(start + size, n)
        try:
            result = devices.to_host(work(model.on_device(stop - start, also), start, stop))
        except Exception as e:  # noqa: BLE001 - only out-of-memory errors are handled
            if not devices.is_out_of_memory(e) or (size == 1 and freed):
                raise
            log.warning("clipinverter: out of memory on %d item(s); %s", stop - start,
                        "retrying with fewer" if size > 1 else "freeing other models and retrying")
            if not freed:
                mm.free_memory(EVERYTHING, model.device, keep_loaded=[])  # ours reloads at the next on_device
                freed = True
            mm.soft_empty_cache(True)
            size = max(1, (stop - start) // 2)
            continue
        if sink is None:
            out.append(result)
        else:
            sink(start, stop, result)
        del result
        pbar.update(stop - start)
        start = stop
    return out


def gather_chunks(model: LoadedInverter, n: int, work: Callable[[CLIPInverter, int, int], object]):
    """run_chunks for work that returns a batch of rows (a tensor, or a tuple of tensors and Nones): the rows of
    every chunk copied into host tensors of n rows allocated at the first chunk. The host then holds the output
    and one chunk, never the chunks and their concatenation together (on a long video, twice the output)."""
    gathered: dict = {}  # "rows": one host tensor per output (None stays None), "tuple": how work returns them

    def sink(start: int, stop: int, result) -> None:
        parts = result if isinstance(result, tuple) else (result,)
        if not gathered:
            gathered["tuple"] = isinstance(result, tuple)
            gathered["rows"] = [None if t is None else torch.empty((n, *t.shape[1:]), dtype=t.dtype) for t in parts]
        for whole, t in zip(gathered["rows"], parts):
            if whole is not None:
                whole[start:stop] = t

    run_chunks(model, n, work, sink)
    if not gathered:
        raise ValueError("gather_chunks: an empty batch")
    return tuple(gathered["rows"]) if gathered["tuple"] else gathered["rows"][0]
