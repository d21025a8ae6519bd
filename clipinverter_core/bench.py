"""`python -m clipinverter_core bench`: the fast edit against the reference edit, in one process.

Both paths load the same weights: the reference (`impl="ref"`) is the official formulation written out step
for step (grouped modulated convs, single-plane blur, unfused BatchNorm, one head at a time); the fast path
(`impl="fast"`) is what the API uses by default. Each repeat runs both, alternating which goes first, so
that noise from other work on the machine falls on both; the table reports medians.

Stages: CLIP text, encoder (backbone + heads -> w), adapter and heads (-> w_hat), remapper, synthesis, and the
whole edit (text + `CLIPInverter.edit`, where the fast path runs the two head passes as one batch).
Relative errors are relative L2 of the fast output against the reference output of the same stage.
The last line printed is one JSON object with everything in the table.
"""
from __future__ import annotations

import os
import platform
import statistics
import tempfile
import threading
import time

import torch

from .devices import PeakMemory, device_name, synchronize

STAGES = ("text", "encoder", "adapter+heads", "remapper", "synthesis")
PROMPT = "this person has blonde hair and a beard"


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every few ms (CPU), or the CUDA allocator's
    peak above the level at entry."""

    def __init__(self, device: torch.device):
        self.device, self.peak = device, 0

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        if self.device.type == "cuda":
            self._cuda = PeakMemory(self.device).__enter__()
            return self
        self.base = self.peak_abs = self._rss() if os.path.exists("/proc/self/statm") else 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.002):
            self.peak_abs = max(self.peak_abs, self._rss())

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self._cuda.__exit__(*exc)
            self.peak = self._cuda.peak
        elif self.base:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak_abs, self._rss()) - self.base
        return False


def _sync(device):
    synchronize(device)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.cpu().double(), b.cpu().double()  # on the host: MPS has no float64
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _stages(model, text_model, x, prompts):
    """Runs the edit stage by stage; returns (seconds per stage, outputs)."""
    dev = model.device
    times, out = {}, {}

    def timed(name, fn):
        _sync(dev)
        t0 = time.perf_counter()
        r = fn()
        _sync(dev)
        times[name] = time.perf_counter() - t0
        return r

    t = out["text"] = timed("text", lambda: text_model.encode_text(prompts))
    w, feats = timed("encoder", lambda: model.invert(x))
    out["w"] = w
    w_hat = out["w_hat"] = timed("adapter+heads", lambda: model.edit_codes(w, feats, t))
    latent = timed("remapper", lambda: model.remap(w_hat, t))
    out["conv_codes"] = latent.conv
    out["image"] = timed("synthesis", lambda: model.decode(latent))
    return times, out


def _whole(model, text_model, x, prompts):
    dev = model.device
    with PeakRSS(dev) as mem:
        _sync(dev)
        t0 = time.perf_counter()
        r = model.edit(x, text_model.encode_text(prompts))
        _sync(dev)
        dt = time.perf_counter() - t0
    return dt, mem.peak, r


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_bench(model_path: str | None, size: int, batches: list[int], precisions: list[str], device: str,
              repeats: int, threads: int | None, log=print, compile: str | None = None) -> dict:
    from .pipeline import CLIPInverter

    if threads:
        torch.set_num_threads(threads)
    tmp = None
    if model_path is None:
        from .weights.standin import make_standin_bundle
        tmp = tempfile.TemporaryDirectory(prefix="clipinverter-bench-")
        model_path = os.path.join(tmp.name, f"standin{size}.safetensors")
        log(f"making a stand-in bundle (random weights, size {size}) in {tmp.name} ...")
        make_standin_bundle(model_path, size, seed=0)
    dev = torch.device(device)
    nets = ("encoder", "adapter", "generator")
    text_model = CLIPInverter.from_bundle(model_path, dev, "fp32", sections=("clip",))
    ref = CLIPInverter.from_bundle(model_path, dev, "fp32", sections=nets, impl="ref")
    report = {
        "device": str(dev), "cpu": cpu_name(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(),
        "cuda": device_name(dev),
        "model": "stand-in" if tmp else os.path.abspath(model_path), "size": ref.size, "repeats": repeats,
        "compile": compile,
        "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None, "results": [],
    }
    g = torch.Generator().manual_seed(0)
    for precision in precisions:
        fast = CLIPInverter.from_bundle(model_path, dev, precision, sections=nets, impl="fast", compile=compile)
        for b in batches:
            x = (torch.rand(b, 3, 256, 256, generator=g) * 2 - 1).to(dev)
            prompts = [PROMPT] * b
            runs = {"ref": [], "fast": []}
            whole = {"ref": [], "fast": []}
            peak = {"ref": 0, "fast": 0}
            outs, warmup = {}, {}
            for r in range(repeats + 1):  # the first round warms up (and compiles) and is not counted
                order = ("ref", "fast") if r % 2 == 0 else ("fast", "ref")
                for name in order:
                    model = ref if name == "ref" else fast
                    t0 = time.perf_counter()
                    times, outs[name] = _stages(model, text_model, x, prompts)
                    dt, mem, res = _whole(model, text_model, x, prompts)
                    outs[name]["edit_image"] = res.image
                    if not r:
                        warmup[name] = time.perf_counter() - t0
                    else:
                        runs[name].append(times)
                        whole[name].append(dt)
                        peak[name] = max(peak[name], mem)
            med = {n: {s: statistics.median(t[s] for t in runs[n]) for s in STAGES} for n in runs}
            for n in med:
                med[n]["edit"] = statistics.median(whole[n])
            o_r, o_f = outs["ref"], outs["fast"]
            errors = {
                "w": _rel(o_f["w"], o_r["w"]),
                "w_hat - w": _rel(o_f["w_hat"] - o_f["w"], o_r["w_hat"] - o_r["w"]),
                "conv_codes": _rel(o_f["conv_codes"], o_r["conv_codes"]),
                "image": _rel(o_f["image"], o_r["image"]),
                "edit_image": _rel(o_f["edit_image"], o_r["edit_image"]),
            }
            finite = all(bool(torch.isfinite(o[k]).all()) for o in (o_r, o_f) for k in ("w_hat", "image", "edit_image"))
            result = {
                "precision": precision, "batch": b,
                "seconds": med, "speedup": {s: med["ref"][s] / med["fast"][s] for s in med["ref"]},
                "peak_mem_mib": {n: peak[n] / 2 ** 20 for n in peak}, "rel_err": errors, "finite": finite,
                "warmup_round_s": warmup,
                "compile_fallbacks": [s.failed for s in (fast._backbone, fast._heads, fast._synthesis)
                                      if getattr(s, "failed", None)],
            }
            report["results"].append(result)
            _print_table(result, log)
        del fast
    if tmp is not None:
        tmp.cleanup()
    report["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    return report


def _print_table(r: dict, log) -> None:
    log(f"\nbatch {r['batch']}, fast path in {r['precision']} (reference: float32); medians, seconds")
    log(f"warm-up round (first calls, compiling if asked): reference {r['warmup_round_s']['ref']:.2f} s, "
        f"fast {r['warmup_round_s']['fast']:.2f} s")
    for f in r["compile_fallbacks"]:
        log(f"COMPILE FELL BACK TO EAGER: {f}")
    log(f"{'stage':<15}{'reference':>11}{'fast':>11}{'speedup':>9}")
    for s in (*STAGES, "edit"):
        label = "whole edit" if s == "edit" else s
        log(f"{label:<15}{r['seconds']['ref'][s]:>11.3f}{r['seconds']['fast'][s]:>11.3f}{r['speedup'][s]:>8.2f}x")
    log(f"peak memory above idle (MiB): reference {r['peak_mem_mib']['ref']:.0f}, fast {r['peak_mem_mib']['fast']:.0f}")
    log("relative L2, fast vs reference: " + ", ".join(f"{k} {v:.1e}" for k, v in r["rel_err"].items())
        + ("" if r["finite"] else "   NON-FINITE VALUES"))

