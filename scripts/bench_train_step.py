"""Seconds per training step: our train_step against the official coach's train() loop, same weights, same run.

    python scripts/bench_train_step.py --official PATH/TO/CLIPInverter [--kit DIR] [--lossnets DIR]
        [--stage 1] [--batch 8] [--steps 2] [--threads N]

PATH is a checkout of https://github.com/johnberg1/CLIPInverter (nothing of it is in this repository: its
modules are imported from PATH at run time). The weights are the parity kit's stand-ins at StyleGAN size 256
(written with ../shared/parity/recipe.py into --kit / --lossnets when those folders lack them). CPU, float32.
What the official side needs on a CPU, and nothing else, is patched around it: a `clip` module giving
open_clip's tokenizer (the same BPE as OpenAI's), CLIP itself (our open_clip model, trainable as clip.load
returns it), LPIPS's `.to("cuda")` and downloads (the local AlexNet file, the lpips package's linear layers),
the model paths, and logging/validation/checkpointing (no-ops). Its loop then runs unchanged on a list of
batches. Each side runs one warm-up step, then --steps timed steps; one JSON line per side, then the ratio.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import sys
import time
import types
from argparse import Namespace

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
PARITY = os.environ.get("CLIPINVERTER_PARITY", os.path.join(ROOT, "..", "shared", "parity"))
CAPTIONS = ["an old man with grey hair and glasses", "the woman has wavy black hair and bangs",
            "a young man with a goatee and a big nose", "she is smiling and wears lipstick"]


def _recipe():
    spec = importlib.util.spec_from_file_location("parity_recipe", os.path.join(PARITY, "recipe.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def weights(kit: str, lossnets: str) -> tuple[dict, dict]:
    names = {"e4e": "e4e_ffhq_encode.pt", "clipinverter": "pretrained_faces.pt",
             "stylegan2": "stylegan2-ffhq-config-f.pt", "clip": "ViT-B-32.pt"}
    files = {k: os.path.join(kit, v) for k, v in names.items()}
    if not all(map(os.path.isfile, files.values())):
        files = _recipe().write_checkpoints(kit, 0, 256)
    from clipinverter_core.lossnets import LOSS_FILES
    nets = {k: os.path.join(lossnets, v) for k, v in LOSS_FILES.items()}
    if not all(map(os.path.isfile, nets.values())):
        nets = _recipe().write_loss_networks(lossnets, 0)
    return files, nets


def batches(n: int, batch: int) -> list:
    g = torch.Generator().manual_seed(0)
    return [(torch.rand(batch, 3, 256, 256, generator=g) * 2 - 1,
             [CAPTIONS[(i + j) % len(CAPTIONS)] for j in range(batch)]) for i in range(n)]


def bench_ours(files, nets, stage, data) -> list[float]:
    from clipinverter_core.training.hparams import stage_defaults
    from clipinverter_core.training.losses import build
    from clipinverter_core.training.model import TrainingModel
    from clipinverter_core.training.ranger import make_optimizer
    from clipinverter_core.training.step import Batch, train_step

    hp = stage_defaults(stage)
    model = TrainingModel.from_official(files["e4e"], files["clip"], stage, stylegan2=files["stylegan2"],
                                        clipinverter=files["clipinverter"])
    losses = build(hp, model, arcface=nets["arcface"], alexnet=nets["alexnet"])
    opt = make_optimizer(hp.optim_name, model.trainable_parameters(), hp.learning_rate)
    times = []
    for x, captions in data:
        tokens = model.tokenize(captions)
        t0 = time.perf_counter()
        opt.zero_grad()
        train_step(model, losses, Batch(x, tokens, torch.roll(tokens, 1, 0), True))
        opt.step()
        times.append(time.perf_counter() - t0)
    return times


@contextlib.contextmanager
def official_on_cpu(checkout: str, nets: dict):
    """Imports from `checkout` with the CPU patches of the module docstring; undoes them afterwards."""
    import lpips
    import torchvision
    from clipinverter_core.networks.clip import Tokenizer

    tok = Tokenizer()
    clip_mod = types.ModuleType("clip")
    clip_mod.tokenize = lambda texts: tok(list(texts))
    sys.modules["clip"] = clip_mod
    sys.path[:0] = [checkout, os.path.join(checkout, "adapter")]
    alexnet = torchvision.models.alexnet
    to, hub = torch.nn.Module.to, torch.hub.load_state_dict_from_url

    def local_alexnet(*_args, **_kwargs):
        m = alexnet(weights=None)
        m.load_state_dict(torch.load(nets["alexnet"], map_location="cpu", weights_only=True))
        return m

    torchvision.models.alexnet = local_alexnet
    torch.nn.Module.to = lambda self, *a, **k: to(self, *("cpu" if x == "cuda" else x for x in a), **k)
    lin = os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", "alex.pth")
    torch.hub.load_state_dict_from_url = lambda *a, **k: torch.load(lin, map_location="cpu", weights_only=True)
    try:
        from configs import paths_config
        paths_config.model_paths["ir_se50"] = nets["arcface"]
        paths_config.model_paths["moco"] = nets["moco"]
        yield
    finally:
        torchvision.models.alexnet, torch.nn.Module.to, torch.hub.load_state_dict_from_url = alexnet, to, hub


def bench_official(checkout, files, nets, stage, data) -> list[float]:
    from clipinverter_core.weights.official import load_pt, read_clip_state_dict
    from clipinverter_core.networks.clip import build_clip
    from clipinverter_core.training.hparams import stage_defaults

    hp = stage_defaults(stage)
    with official_on_cpu(checkout, nets):
        if stage == 1:
            from adapter.training.coach_first_stage import Coach
        else:
            from adapter.training.coach_second_stage import Coach
        from adapter.adapter_decoder import CLIPAdapterWithDecoder
        from adapter.adapter_first_stage import CLIPAdapterStyleGAN
        from criteria import id_loss, w_norm
        from criteria.clip_loss import DirectionalCLIPLoss
        from criteria.lpips.lpips import LPIPS
        from models.e4e_features import pSp

        opts = Namespace(**{k: getattr(hp, k) for k in ("id_lambda", "l2_lambda", "lpips_lambda", "w_norm_lambda",
                                                         "clip_lambda", "cycle_lambda", "learning_rate", "optim_name")},
                         stylegan_size=256, start_from_latent_avg=True, start_from_encoded_w_plus=False,
                         use_moco=False, no_coarse_mapper=False, no_medium_mapper=False, no_fine_mapper=False,
                         device="cpu", pretrained_e4e_path=files["e4e"], stylegan_weights=files["stylegan2"],
                         checkpoint_path=files["clipinverter"] if stage == 2 else None,
                         is_training_from_stage_one=False, batch_size=len(data[0][1]), max_steps=len(data),
                         image_interval=10 ** 9, board_interval=10 ** 9, val_interval=10 ** 9, save_interval=10 ** 9)
        coach = Coach.__new__(Coach)
        coach.opts, coach.global_step, coach.device = opts, 0, "cpu"
        coach.clip_model = build_clip(read_clip_state_dict(files["clip"])).requires_grad_(True)  # as clip.load
        coach.net = (CLIPAdapterStyleGAN if stage == 1 else CLIPAdapterWithDecoder)(opts)
        if stage == 1:  # the stage-1 net loads the generator from g_ema; the adapter of the same run, as ours
            sd = load_pt(files["clipinverter"])["state_dict"]
            coach.net.adapter.load_state_dict({k[8:]: v for k, v in sd.items() if k.startswith("adapter.")})
        coach.encoder = pSp(opts).eval()
        coach.face_pool = torch.nn.AdaptiveAvgPool2d((256, 256))
        coach.id_loss = id_loss.IDLoss().eval()
        coach.mse_loss = torch.nn.MSELoss().eval()
        coach.directional_loss = DirectionalCLIPLoss(coach.clip_model)
        coach.lpips_loss = LPIPS(net_type="alex").eval()
        coach.w_norm_loss = w_norm.WNormLoss(opts=opts)
        coach.optimizer = coach.configure_optimizers()
        for name in ("parse_and_log_images", "print_metrics", "log_metrics", "checkpoint_me"):
            setattr(coach, name, lambda *a, **k: None)
        coach.validate = lambda: None
        times = []
        random.seed(0)
        for x, captions in data:   # one train() per batch, to time each step
            coach.train_dataloader, coach.global_step, opts.max_steps = [(x, x, captions)], 0, 1
            t0 = time.perf_counter()
            coach.train()
            times.append(time.perf_counter() - t0)
    return times


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", required=True, help="a checkout of the official CLIPInverter repository")
    ap.add_argument("--kit", default=os.path.join(ROOT, ".bench_kit256"))
    ap.add_argument("--lossnets", default=os.path.join(ROOT, ".bench_lossnets"))
    ap.add_argument("--stage", type=int, default=1, choices=(1, 2))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--only", choices=("ours", "official"), default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    files, nets = weights(a.kit, a.lossnets)
    data = batches(a.steps + 1, a.batch)
    results = {}
    for side in ("ours", "official"):
        if a.only and side != a.only:
            continue
        t = bench_ours(files, nets, a.stage, data) if side == "ours" else \
            bench_official(os.path.abspath(a.official), files, nets, a.stage, data)
        timed = t[1:]
        results[side] = sum(timed) / len(timed)
        print(json.dumps({"side": side, "stage": a.stage, "batch": a.batch, "threads": torch.get_num_threads(),
                          "warmup_s": round(t[0], 2), "step_s": [round(s, 2) for s in timed],
                          "mean_step_s": round(results[side], 2)}), flush=True)
    if len(results) == 2:
        print(f"official / ours: {results['official'] / results['ours']:.2f}x")


if __name__ == "__main__":
    main()
