"""The steps of bench/gpu_check.sh that are Python: `kit` (the stand-in bundle) and `bench` (timings + the report).

    python bench/gpu_check.py kit --size 1024 --cache DIR [--parity DIR]
    python bench/gpu_check.py bench --model BUNDLE --device cuda --batch 1,8,32 --precision fp32,bf16,fp16 \
        --compile none,reduce-overhead [--official DIR --kit DIR] [--junit FILE] --out DIR [--budget SECONDS]

`bench` times the whole edit (`CLIPInverter.edit`) with the text embedding cached and the images already on the
device (the conditions of issue 11's targets), for our fast path in each precision and compile mode, for our
reference path (`impl="ref"`, float32, eager) and, when the official code is carried in, for the official path
(float32, eager) as the anchor; all in one process, on the same weights and inputs. Per row: median seconds per
call and per edit, edits/s, the allocator's peak above the weights and with them, the first call's time (for
compiled rows: compiling plus the first run), relative L2 of the image against our float32 eager fast path at the
same batch, and whether everything was finite. Configurations that would not fit in `--budget` seconds are listed
as skipped. Writes gpu_check.json and gpu_check.md into --out and prints the table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from clipinverter_core import devices  # noqa: E402
from clipinverter_core.bench import PROMPT, PeakRSS, cpu_name  # noqa: E402
from clipinverter_core.pipeline import CLIPInverter  # noqa: E402

NETS = ("encoder", "adapter", "generator")
KIT_NAMES = {"e4e": "e4e_ffhq_encode.pt", "clipinverter": "pretrained_faces.pt", "clip": "ViT-B-32.pt"}
COMPILE_COST_MARGIN = 1.3   # a compiled row is started only if 1.3x the slowest compile so far still fits
BUDGET_S = 180             # the bench's share of gpu_check.sh's 8 minutes (kit and tests take the rest)
WARMUP_CALLS = 3            # untimed calls before the timed ones: CUDA graphs record on the second or third


# --- kit -------------------------------------------------------------------------------------------------------
def build_kit(size: int, cache: str, parity: str | None) -> str:
    """The parity kit's official-format files and our bundle converted from them (the layout tests/conftest.py
    reuses from CLIPINVERTER_KIT_CACHE), or, without the kit's recipe, a stand-in bundle. Returns the bundle."""
    folder = os.path.join(cache, f"kit{size}")
    bundle = os.path.join(folder, "bundle.safetensors")
    if os.path.isfile(bundle):
        return bundle
    os.makedirs(folder, exist_ok=True)
    recipe = os.path.join(parity or "", "recipe.py")
    if parity and os.path.isfile(recipe):
        import importlib.util

        from clipinverter_core.weights.convert import convert
        spec = importlib.util.spec_from_file_location("parity_recipe", recipe)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        files = mod.write_checkpoints(folder, seed=0, size=size)
        convert(files["clipinverter"], files["e4e"], files["clip"], bundle, log=lambda *_: None)
    else:
        from clipinverter_core.weights.standin import make_standin_bundle
        make_standin_bundle(bundle, size, seed=0)
    return bundle


# --- timing ----------------------------------------------------------------------------------------------------
def _weight_bytes(model: CLIPInverter) -> int:
    seen, total = set(), 0
    for net in (model.encoder, model.adapter, model.generator):
        for t in list(net.parameters()) + list(net.buffers()):
            key = t.untyped_storage().data_ptr()
            if key not in seen:
                seen.add(key)
                total += t.untyped_storage().nbytes()
    return total


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().cpu().double(), b.detach().cpu().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def time_calls(fn, device, repeats: int, warmup: int = WARMUP_CALLS):
    """(first call s, median s of `repeats` calls after `warmup` calls (the first one timed), peak bytes above
    entry during the timed calls, last output)."""
    devices.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    devices.synchronize(device)
    first = time.perf_counter() - t0
    for _ in range(warmup - 1):
        out = fn()
    times = []
    with (devices.PeakMemory(device) if device.type == "cuda" else PeakRSS(device)) as mem:
        for _ in range(repeats):
            devices.synchronize(device)
            t0 = time.perf_counter()
            out = fn()
            devices.synchronize(device)
            times.append(time.perf_counter() - t0)
    return first, statistics.median(times), mem.peak, out


def _row(path, precision, compile, batch, first, med, peak, weights, image, ref_image, finite, **extra):
    return {"path": path, "precision": precision, "compile": compile or "eager", "batch": batch,
            "first_call_s": first, "s_per_call": med, "ms_per_edit": 1e3 * med / batch, "edits_per_s": batch / med,
            "peak_above_weights_mib": peak / 2 ** 20, "peak_with_weights_mib": (peak + weights) / 2 ** 20,
            "rel_l2_image_vs_fast_fp32": None if ref_image is None else _rel(image, ref_image),
            "finite": finite, **extra}


class Session:
    """The rows of one bench run: shared inputs, the float32 eager baselines, the time budget, what was skipped."""

    def __init__(self, a):
        self.a, self.dev = a, torch.device(a.device)
        self.batches = [int(b) for b in a.batch.split(",") if b]
        self.deadline = time.monotonic() + a.budget
        self.rows, self.skipped, self.baseline, self.compile_cost = [], [], {}, 0.0
        text_model = CLIPInverter.from_bundle(a.model, self.dev, "fp32", sections=("clip",))
        g = torch.Generator().manual_seed(0)
        self.inputs = {}
        for b in self.batches:  # the text embedding cached, the images already on the device
            x = (torch.rand(b, 3, 256, 256, generator=g) * 2 - 1).to(self.dev)
            self.inputs[b] = (x, text_model.encode_text([PROMPT] * b))

    def fits(self, mode) -> bool:
        need = COMPILE_COST_MARGIN * self.compile_cost if mode else 0.0
        return time.monotonic() + need < self.deadline

    def rows_of(self, name: str, precision: str, mode, make, call) -> None:
        """One row per batch size for the model `make()` builds; call(model, x, t) -> (w, w_hat, image). A row
        that fails (out of memory, a compiler error) is listed as skipped with its error; the others go on."""
        label = f"{name} {precision} {mode or 'eager'}"
        if not self.fits(mode):
            self.skipped += [f"{label} batch {b}: time budget" for b in self.batches]
            return
        try:
            model = make()
        except Exception as e:  # noqa: BLE001 - reported, the run goes on
            self.skipped.append(f"{label}: could not load ({type(e).__name__}: {str(e)[:200]})")
            return
        weights = model.weight_bytes() if hasattr(model, "weight_bytes") else _weight_bytes(model)
        for b in self.batches:
            if not self.fits(mode):
                self.skipped.append(f"{label} batch {b}: time budget")
                continue
            x, t = self.inputs[b]
            try:
                first, med, peak, (w, w_hat, image) = time_calls(lambda: call(model, x, t), self.dev,
                                                                 self.a.repeats, self.a.warmup)
            except Exception as e:  # noqa: BLE001
                self.skipped.append(f"{label} batch {b}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                devices.empty_cache()
                continue
            if mode:
                self.compile_cost = max(self.compile_cost, first)
            if (name, precision, mode) == ("fast", "fp32", None):
                self.baseline[b] = image
            finite = bool(torch.isfinite(image).all()) and bool(torch.isfinite(w_hat).all())
            fallbacks = [s.failed for s in (getattr(model, n, None) for n in ("_backbone", "_heads", "_synthesis"))
                         if getattr(s, "failed", None)]
            self.rows.append(_row(name, precision, mode, b, first, med, peak, weights, image, self.baseline.get(b),
                                  finite, compile_fallbacks=fallbacks))
            print(_line(self.rows[-1]), flush=True)
        del model
        devices.empty_cache()


def _ours(model, x, t):
    r = model.edit(x, t)
    return r.w, r.w_hat, r.image


def run(a) -> dict:
    """Fast eager rows first (the baselines), then the anchors (our reference, the official path), then the
    compiled rows, which are the first to go when the budget runs out."""
    from official_anchor import OfficialEdit, available

    s = Session(a)
    precisions = sorted((p for p in a.precision.split(",") if p), key=lambda p: p != "fp32")  # the baseline first
    modes = [None if m in ("none", "eager") else m for m in a.compile.split(",") if m]
    nets = lambda precision, mode=None, impl="fast": (  # noqa: E731
        lambda: CLIPInverter.from_bundle(a.model, s.dev, precision, sections=NETS, impl=impl, compile=mode))
    for precision in precisions if None in modes else []:
        s.rows_of("fast", precision, None, nets(precision), _ours)
    s.rows_of("ref", "fp32", None, nets("fp32", impl="ref"), _ours)
    kit_files = a.kit and os.path.isfile(os.path.join(a.kit, "pretrained_faces.pt"))
    if available(a.official) and kit_files:
        s.rows_of("official", "fp32", None, lambda: OfficialEdit(a.official, a.kit, s.dev), lambda m, x, t: m(x, t))
    elif a.official:
        s.skipped.append(f"official: no checkout at {a.official}" if not available(a.official)
                         else f"official: no official-format files in {a.kit} (the parity kit's recipe writes them)")
    for mode in [m for m in modes if m]:
        for precision in precisions:
            s.rows_of("fast", precision, mode, nets(precision, mode), _ours)
    official = {r["batch"]: r["s_per_call"] for r in s.rows if r["path"] == "official"}
    for r in s.rows:
        r["speedup_vs_official"] = official[r["batch"]] / r["s_per_call"] if r["batch"] in official else None
    return {"machine": machine(s.dev), "command": " ".join(sys.argv), "model": os.path.abspath(a.model),
            "repeats": a.repeats, "warmup": a.warmup, "budget_s": a.budget, "rows": s.rows, "skipped": s.skipped,
            "tests": read_junit(a.junit) if a.junit else None}


def machine(dev: torch.device) -> dict:
    info = {"device": str(dev), "gpu": devices.device_name(dev), "cpu": cpu_name(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "python": platform.python_version(), "threads": torch.get_num_threads(),
            "tf32_conv": torch.backends.cudnn.allow_tf32, "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}
    try:
        info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                        capture_output=True, text=True, timeout=20).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["driver"] = None
    return info


def read_junit(path: str) -> dict:
    """passed / failed / skipped counts and the failing test ids of a pytest --junitxml file."""
    if not os.path.isfile(path):
        return {"error": f"no test report at {path}"}
    counts, failed = {"passed": 0, "failed": 0, "skipped": 0}, []
    for case in ET.parse(path).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            counts["failed"] += 1
            failed.append(f"{case.get('classname')}::{case.get('name')}")
        elif "skipped" in kinds:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return {**counts, "failures": failed}


# --- report ----------------------------------------------------------------------------------------------------
HEADER = ("| path | precision | compile | batch | ms / edit | edits/s | peak MiB (above weights / with) | first call s "
          "| rel L2 vs fast fp32 | finite | vs official |")


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def _line(r: dict) -> str:
    return (f"| {r['path']} | {r['precision']} | {r['compile']} | {r['batch']} | {r['ms_per_edit']:.2f} "
            f"| {r['edits_per_s']:.1f} | {r['peak_above_weights_mib']:.0f} / {r['peak_with_weights_mib']:.0f} "
            f"| {r['first_call_s']:.2f} | {_fmt(r['rel_l2_image_vs_fast_fp32'], '.1e')} | {'yes' if r['finite'] else 'NO'} "
            f"| {_fmt(r.get('speedup_vs_official'), '.2f')}{'x' if r.get('speedup_vs_official') else ''} |")


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"GPU check: {m['gpu'] or m['cpu']} ({m['device']}), driver {m.get('driver') or '-'}, torch {m['torch']} "
             f"(CUDA {m['cuda'] or '-'}), TF32 conv {m['tf32_conv']} / matmul {m['tf32_matmul']}", "",
             f"    {report['command']}", ""]
    tests = report.get("tests")
    if tests:
        lines += [f"Tests: {tests.get('passed', 0)} passed, {tests.get('failed', 0)} failed, "
                  f"{tests.get('skipped', 0)} skipped" + (f" ({tests['error']})" if "error" in tests else ""), ""]
        lines += [f"- FAILED {f}" for f in tests.get("failures", [])]
    lines += [HEADER, "| " + " | ".join(["---"] * 11) + " |"] + [_line(r) for r in report["rows"]]
    lines += [f"- skipped: {s}" for s in report["skipped"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("kit")
    k.add_argument("--size", type=int, default=1024)
    k.add_argument("--cache", required=True)
    k.add_argument("--parity", default=None)
    b = sub.add_parser("bench")
    b.add_argument("--model", required=True)
    b.add_argument("--device", default="cuda")
    b.add_argument("--batch", default="1,8,32")
    b.add_argument("--precision", default="fp32,bf16,fp16")
    b.add_argument("--compile", default="none,reduce-overhead")
    b.add_argument("--repeats", type=int, default=5, help="timed calls per row (the median is reported)")
    b.add_argument("--warmup", type=int, default=WARMUP_CALLS, help="untimed calls before them, the first timed")
    b.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for all timed rows")
    b.add_argument("--official", default=None)
    b.add_argument("--kit", default=None, help="folder of the official-format files (for the official anchor)")
    b.add_argument("--junit", default=None)
    b.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.cmd == "kit":
        print(build_kit(a.size, a.cache, a.parity))
        return 0
    report = run(a)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "gpu_check.json"), "w") as f:
        json.dump(report, f, indent=1)
    text = markdown(report)
    with open(os.path.join(a.out, "gpu_check.md"), "w") as f:
        f.write(text)
    print("\n" + text)
    ok = all(r["finite"] for r in report["rows"]) and not (report["tests"] or {}).get("failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
