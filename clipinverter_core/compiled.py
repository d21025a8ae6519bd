"""Opt-in torch.compile of the three heavy stages, with a fallback to the same eager code.

    model = CLIPInverter.from_bundle(path, device="cuda", compile="reduce-overhead")

`compile` takes torch.compile's modes: "default", "reduce-overhead" (CUDA graphs on CUDA) or "max-autotune".
The encoder backbone, the encoder heads and the synthesis are each compiled on first use, once per input shape
(a new batch size compiles again). Weights are frozen into the compiled code (Inductor's `freezing`): on CPU
that pre-packs the convolution weights for oneDNN. Compiling takes tens of seconds per shape, which pays off
only for many edits in one process.

With CUDA graphs ("reduce-overhead", "max-autotune") each call's outputs are copied out of the graph's static
buffers, which the next call overwrites.

When compiling fails (no C++ compiler or Triton, an unsupported device such as MPS, Windows without a
toolchain), the stage logs one warning and runs eagerly from then on: the same code, the same results. Out-of-
memory errors are not swallowed: the chunked batching above needs to see them.
"""
from __future__ import annotations

import logging

import torch

from .devices import is_out_of_memory

log = logging.getLogger("clipinverter")

MODES = ("default", "reduce-overhead", "max-autotune")


def _copy(x):
    return x.clone() if isinstance(x, torch.Tensor) else x


class CompiledStage:
    """Callable: the torch.compile'd `fn`, or `fn` itself once compiling has failed."""

    def __init__(self, fn, mode: str, name: str):
        if mode not in MODES:
            raise ValueError(f"compile must be one of {MODES} (or None), got {mode!r}")
        self.eager, self.name, self.mode = fn, name, mode
        self.failed: str | None = None
        self.compiled = None
        try:
            from torch._inductor import list_mode_options

            options = {**list_mode_options(mode), "freezing": True}  # torch.compile takes a mode or options, not both
            self.compiled = torch.compile(fn, dynamic=False, options=options)
        except Exception as e:  # noqa: BLE001 - a torch without a working torch.compile
            self._fall_back(e)

    def _fall_back(self, e: Exception) -> None:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        self.failed = f"{type(e).__name__}: {first_line}"
        log.warning("clipinverter: torch.compile of %s failed (%s); running it without compiling",
                    self.name, self.failed[:300])

    def __call__(self, *args):
        if self.failed is None:
            try:
                if self.mode == "default":
                    return self.compiled(*args)
                # CUDA graphs ("reduce-overhead", "max-autotune") return static buffers that the next replay
                # overwrites; the pipeline keeps stage outputs across calls (chunks, the nodes' latents),
                # so each call starts a new graph step and hands back copies.
                torch.compiler.cudagraph_mark_step_begin()
                return torch.utils._pytree.tree_map(_copy, self.compiled(*args))
            except Exception as e:  # noqa: BLE001 - any compiler failure: fall back to the eager code
                if is_out_of_memory(e):  # CUDA's OutOfMemoryError and MPS's RuntimeError: the batching halves
                    raise
                self._fall_back(e)
        return self.eager(*args)
