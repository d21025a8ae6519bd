"""Seconds per identity-tuning step (PTI's photo loop, batch 1, float32): ours against the official loop on the
same weights, in one process, interleaved by path, medians.

    python bench/tuning_bench.py --kit KIT_DIR --alexnet ALEXNET.pth [--device cpu] [--steps 5] [--warmup 1]
                                 [--official official/] [--measure time|memory|clip-memory]
                                 [--clip-frames 100 --clip-visits 3]

Paths (each: fresh Adam over the synthesis weights, every step = forward at the pivot, MSE + LPIPS-AlexNet
against the photo, zero_grad, backward, Adam step, as danielroich/PTI's SingleIDCoach; no LPIPS stop):
- official: the official CLIPInverter decoder (`models.stylegan2.model_remapper.Generator`, from a checkout in
  --official, bench/gpu_prepare.sh writes one) in PTI's loop: the reference.
- ours, official form: clipinverter_core's Generator as loaded (grouped modulated convs, single-plane blur).
- ours: clipinverter_core.tuning.PivotalTuner (the dense modulated convolution, depthwise blur).
--measure memory: the peak memory above the loaded networks (CUDA: the allocator's peak; CPU: sampled RSS) of a
two-step photo tuning; clip-memory: of STIT's clip mode over --clip-frames 8-bit crops (its first --clip-visits
frame visits: the crops are all there from the start, and each visit's working set is the same). Each in a
process of its own (a CPU allocator keeps what it freed: a second measurement would see the first's pages).
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from clipinverter_core.bench import PeakRSS, cpu_name  # noqa: E402
from clipinverter_core import devices  # noqa: E402
from clipinverter_core.devices import synchronize  # noqa: E402
from clipinverter_core.lossnets import load_lpips  # noqa: E402
from clipinverter_core.networks import Generator  # noqa: E402
from clipinverter_core.tuning import CLIP, PHOTO, PivotalTuner, synthesis_parameters  # noqa: E402
from clipinverter_core.weights.bundle import load_bundle, load_strict  # noqa: E402


def random_alexnet(folder: str) -> str:
    import torchvision

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "alexnet-owt-7be5be79.pth")
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path


def official_decoder(folder: str, kit: str, size: int, device) -> torch.nn.Module:
    from clipinverter_core.weights.official import load_pt

    sys.path.insert(0, os.path.abspath(folder))
    from models.stylegan2.model_remapper import Generator as OfficialGenerator  # noqa: E402 - the official code

    sd = load_pt(os.path.join(kit, "pretrained_faces.pt"))["state_dict"]
    gen = OfficialGenerator(size, 512, 8)
    gen.load_state_dict({k[len("decoder."):]: v for k, v in sd.items() if k.startswith("decoder.")})
    return gen.to(device).eval().requires_grad_(False)


def pti_loop(synth, params, lpips, pivot, x, steps: int, device) -> list[float]:
    """PTI's SingleIDCoach loop over `synth(w)`; the seconds of each step."""
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=PHOTO.lr)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        out = synth(pivot)
        loss = 0.0 + F.mse_loss(out, x) * 1 + torch.squeeze(lpips(out, x)) * 1
        opt.zero_grad()
        loss.backward()
        opt.step()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


def ours(gen, lpips, w_avg, pivot, x, steps: int, device) -> list[float]:
    stamps = [time.perf_counter()]

    def progress(step, total, visit):
        synchronize(device)
        stamps.append(time.perf_counter())
    PivotalTuner(gen, lpips, w_avg, PHOTO.replace(steps=steps, lpips_stop=None)).run(pivot, x, progress=progress)
    return [b - a for a, b in zip(stamps, stamps[1:])]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kit", required=True, help="a parity kit folder (bundle.safetensors + the official files)")
    ap.add_argument("--alexnet", default=None, help="alexnet-owt-7be5be79.pth (default: torchvision's AlexNet "
                    "with random weights, written to --work: the time does not depend on the values)")
    ap.add_argument("--work", default=os.path.join(ROOT, "out", "tuning_bench"))
    ap.add_argument("--full", type=int, default=0, help="also time one whole tuning of this many steps (ours)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per path and round")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--official", default=os.path.join(ROOT, "official"))
    ap.add_argument("--measure", choices=("time", "memory", "clip-memory"), default="time")
    ap.add_argument("--clip-frames", type=int, default=100)
    ap.add_argument("--clip-visits", type=int, default=3)
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    torch.manual_seed(0)
    bundle = load_bundle(os.path.join(a.kit, "bundle.safetensors"), "cpu", ("generator", "encoder"))
    size = int(bundle.metadata["stylegan_size"])
    gen = load_strict(Generator(size), bundle.section("generator"), "generator").to(device).eval().requires_grad_(False)
    w_avg = bundle.tensors["latent_avg"][0].to(device)
    lpips = load_lpips(a.alexnet or random_alexnet(a.work), device)
    pivot = (bundle.tensors["latent_avg"][None] + 0.5 * torch.randn(1, gen.n_latent, 512)).to(device)
    x = (torch.rand(1, 3, size, size) * 2 - 1).to(device)
    paths = {"ours": lambda n: ours(gen, lpips, w_avg, pivot, x, n, device)}

    def official_form(n):
        g = copy.deepcopy(gen)
        return pti_loop(lambda w: g(w), list(synthesis_parameters(g).values()), lpips, pivot, x, n, device)
    paths["ours, official form"] = official_form
    if os.path.isfile(os.path.join(a.official, "models", "stylegan2", "model_remapper.py")):
        off = official_decoder(a.official, a.kit, size, device)

        def official(n):
            g = copy.deepcopy(off)
            params = [p for name, p in g.named_parameters() if not name.startswith(("style.", "affine_mlps.", "lambdas"))]
            return pti_loop(lambda w: g([w], input_is_latent=True, randomize_noise=False)[0], params, lpips, pivot, x,
                            n, device)
        paths = {"official": official, **paths}
    where = devices.device_name(device) or cpu_name()
    if a.measure == "memory":
        with PeakRSS(device) as peak:
            ours(gen, lpips, w_avg, pivot, x, 2, device)
        print(f"{where}, size {size}: peak memory of a photo tuning above the loaded networks: "
              f"{peak.peak / 2 ** 30:.2f} GB")
        return 0
    if a.measure == "clip-memory":
        with PeakRSS(device) as peak:
            crops = torch.randint(0, 256, (a.clip_frames, 3, size, size), dtype=torch.uint8)
            visits = []

            def check():
                if len(visits) == a.clip_visits:
                    raise StopIteration
                visits.append(1)
            try:
                PivotalTuner(gen, lpips, w_avg, CLIP.replace(steps=1)).run(pivot.expand(a.clip_frames, -1, -1), crops,
                                                                          check=check)
            except StopIteration:
                pass
        print(f"{where}, size {size}: peak memory of a {a.clip_frames}-frame clip tuning (8-bit crops, "
              f"{a.clip_visits} visits) above the loaded networks: {peak.peak / 2 ** 30:.2f} GB")
        return 0
    times: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(a.rounds):
        for name, run in paths.items():
            times[name] += run(a.warmup + a.steps)[a.warmup:]
    ref = "official" if "official" in times else "ours, official form"
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"machine: {where}, torch {torch.__version__}, size {size}, {a.rounds} rounds x {a.steps} steps (after "
          f"{a.warmup} warm-up)")
    print("| path | s / step (median) | vs " + ref + " |\n| --- | --- | --- |")
    for k, v in med.items():
        print(f"| {k} | {v:.3f} | {med[ref] / v:.2f}x |")
    if a.full:
        t0 = time.perf_counter()
        ours(gen, lpips, w_avg, pivot, x, a.full, device)
        print(f"one whole tuning of {a.full} step(s) (ours, no LPIPS stop): {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
