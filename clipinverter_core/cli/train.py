"""`python -m clipinverter_core train ...` and `... export RUN_DIR -o BUNDLE` (also under torchrun).

Nothing heavy is imported until a command runs: the parser is built on every start of the CLI.
"""
from __future__ import annotations

from .common import add_quiet

import os

LAMBDAS = ("id", "l2", "lpips", "w_norm", "clip", "cycle")
# flags a resumed run may change (the rest are the run's own, read from its checkpoint)
RESUME_OVERRIDES = ("max_steps", "device", "workers", "save_every", "val_every", "image_every", "board_every",
                    "quiet", "no_export")
HPARAM_FLAGS = {"batch_size": "batch_size", "val_batch_size": "test_batch_size", "lr": "learning_rate", "max_steps": "max_steps",
                "optimizer": "optim_name", "use_moco": "use_moco", **{f"{n}_lambda": f"{n}_lambda" for n in LAMBDAS}}
SCHEDULE_DEFAULTS = {"save_every": 1000, "val_every": 10000, "image_every": 1000, "board_every": 50,
                     "workers": 2, "hflip": 0.5, "val_fraction": 0.05, "seed": 0, "precision": "fp32"}


def add_parser(sub) -> None:
    t = sub.add_parser("train", help="train stage 1 (CLIPAdapter) or stage 2 (CLIPRemapper); torchrun for DDP",
                       description="Defaults are the official README's commands (batch 8; stage 1: lr 5e-4, "
                       "200k steps; stage 2: lr 1.5e-4, 20k steps; their lambdas). See the README's Training.")
    t.add_argument("--stage", type=int, choices=(1, 2))
    t.add_argument("--data", help="images/ + captions/, or an imagefolder with metadata.jsonl / .csv")
    t.add_argument("--out", help="the run folder: checkpoint, logs, images, bundle.safetensors")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped")
    n = t.add_argument_group("networks: a bundle, or the official files")
    n.add_argument("--model", help="bundle (.safetensors); stage 2: the stage-1 export")
    n.add_argument("--e4e", help="e4e_ffhq_encode.pt")
    n.add_argument("--stylegan2", help="stylegan2-ffhq-config-f.pt (rosinality), stage 1")
    n.add_argument("--clipinverter", help="a CLIPInverter checkpoint (stage 1 from its adapter; stage 2's start)")
    n.add_argument("--clip", help="ViT-B-32.pt (OpenAI), or open_clip .safetensors / .bin")
    n.add_argument("--fresh-adapter", action="store_true", default=None,
                   help="stage 1: a new adapter (the official initialisation) even if --model holds one")
    n.add_argument("--fresh-remapper", action="store_true", default=None,
                   help="stage 2: a new remapper (lambdas 0.05) even if the stage-1 result holds one")
    ln = t.add_argument_group("loss networks (default: found in models/clipinverter/)")
    ln.add_argument("--arcface", help="model_ir_se50.pth (TreB1eN's InsightFace_Pytorch, as pSp links it)")
    ln.add_argument("--moco", help="moco_v2_800ep_pretrain.pt (facebookresearch/moco), with --use-moco")
    ln.add_argument("--lpips-alexnet", dest="alexnet", help="alexnet-owt-7be5be79.pth (torchvision)")
    ln.add_argument("--loss-models", action="append", metavar="DIR", help="a folder to look for them in")
    h = t.add_argument_group("hyper-parameters (default: the official stage's)")
    h.add_argument("--batch-size", type=int, help="the global batch, over all processes (8)")
    h.add_argument("--lr", type=float, help="learning rate (5e-4 / 1.5e-4)")
    h.add_argument("--max-steps", type=int, help="optimiser steps (200000 / 20000)")
    h.add_argument("--optimizer", choices=("ranger", "adam"))
    h.add_argument("--use-moco", action="store_true", default=None, help="MoCo v2 identity loss (not faces)")
    for name in LAMBDAS:
        h.add_argument(f"--{name.replace('_', '-')}-lambda", type=float)
    r = t.add_argument_group("run")
    r.add_argument("--seed", type=int, help="data order, flips, captions, mismatched steps, split (0)")
    r.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when there is one); torchrun: cuda:LOCAL_RANK")
    r.add_argument("--precision", choices=("fp32", "bf16"), help="bf16: autocast (fp32 weights)")
    r.add_argument("--hflip", type=float, help="probability of a horizontal flip (0.5)")
    r.add_argument("--val-fraction", type=float, help="held-out share of the data (0.05), seeded")
    r.add_argument("--val-list", help="held-out names, one per line (instead of --val-fraction)")
    r.add_argument("--val-batch-size", type=int, help="validation global batch (8, the official test_batch_size)")
    r.add_argument("--val-batches", type=int, help="validation batches per validation (all)")
    for flag in ("save_every", "val_every", "image_every", "board_every"):
        r.add_argument(f"--{flag.replace('_', '-')}", type=int, help=f"({SCHEDULE_DEFAULTS[flag]}; 0: never)")
    r.add_argument("--workers", type=int, help="data loader processes per rank (2)")
    add_quiet(r, "--no-progress", default=None)
    r.add_argument("--no-export", action="store_true", default=None, help="no bundle at the end of the run")
    t.set_defaults(run=run_train)

    e = sub.add_parser("export", help="a training run -> a bundle that edit, info and the nodes load")
    e.add_argument("run_dir")
    e.add_argument("-o", "--output", help="the bundle to write (default RUN_DIR/bundle.safetensors)")
    e.set_defaults(run=run_export)


def _given(a, names) -> dict:
    return {k: getattr(a, k) for k in names if getattr(a, k, None) is not None}


def new_config(a) -> dict:
    """The run's config from the flags: everything a resume or an export needs, JSON-able."""
    from ..errors import InputError
    from ..training.parts import default_hparams

    for flag in ("stage", "data", "out"):
        if getattr(a, flag) is None:
            raise InputError(f"train needs --{flag} (or --resume RUN_DIR)")
    hp = default_hparams(a.stage)
    for flag, field in HPARAM_FLAGS.items():
        if getattr(a, flag, None) is not None:
            if field not in hp:
                raise InputError(f"--{flag.replace('_', '-')}: the hyper-parameters have no '{field}'")
            hp[field] = getattr(a, flag)
    networks = {k: os.path.abspath(v) for k, v in _given(a, ("model", "e4e", "stylegan2", "clipinverter",
                                                              "clip")).items()}
    if networks.get("model") and len(networks) > 1:
        raise InputError("give --model BUNDLE or the official files, not both")
    cfg = {**SCHEDULE_DEFAULTS, **_given(a, SCHEDULE_DEFAULTS)}
    standin = False
    if networks.get("model"):
        from ..weights.bundle import read_metadata
        standin = bool(read_metadata(networks["model"]).get("standin"))
    return {"stage": a.stage, "data": os.path.abspath(a.data), "out": os.path.abspath(a.out), "networks": networks,
            "sources": [], "standin": standin, "hparams": hp,
            "loss_files": _given(a, ("arcface", "moco", "alexnet")), "loss_folders": a.loss_models,
            "split": {"val_fraction": cfg["val_fraction"], "val_list": a.val_list, "seed": cfg["seed"]},
            **{k: cfg[k] for k in ("seed", "precision", "hflip", "workers", "save_every", "val_every",
                                   "image_every", "board_every")},
            "val_batches": a.val_batches,
            "fresh_adapter": bool(a.fresh_adapter), "fresh_remapper": bool(a.fresh_remapper),
            "no_progress": bool(a.quiet), "no_export": bool(a.no_export)}


def resumed_config(a) -> dict:
    from ..errors import InputError
    from ..training import checkpoint

    _, cfg = checkpoint.read_config(checkpoint.checkpoint_path(a.resume))
    not_flags = ("resume", "run", "cmd", "written")  # the parser's own entries, and main()'s list of outputs
    fixed = [k for k in vars(a) if getattr(a, k) is not None and k not in RESUME_OVERRIDES + not_flags]
    if fixed:
        raise InputError(f"--{fixed[0].replace('_', '-')}: a resumed run keeps its own settings; only "
                         + ", ".join("--" + k.replace("_", "-") for k in RESUME_OVERRIDES) + " may change")
    if a.max_steps is not None:
        cfg["hparams"]["max_steps"] = a.max_steps
    given = _given(a, ("workers", "save_every", "val_every", "image_every", "board_every", "quiet", "no_export"))
    if "quiet" in given:
        given["no_progress"] = given.pop("quiet")  # the run's config keeps the name it was saved under
    cfg.update(given)
    cfg["out"] = os.path.abspath(a.resume)
    return cfg


def run_train(a) -> int:
    import torch

    from .. import devices
    from ..errors import InputError
    from ..training import checkpoint, distributed
    from ..training.data import find_items, split
    from ..training.export import BUNDLE_NAME, export_model
    from ..training.parts import build_parts, sources
    from ..training.trainer import Schedule, Trainer

    ctx, device = distributed.init(a.device)
    try:
        cfg = resumed_config(a) if a.resume else new_config(a)
        ckpt = checkpoint.checkpoint_path(cfg["out"])
        if not a.resume and os.path.isfile(ckpt):
            raise InputError(f"{cfg['out']} holds a run already: --resume {cfg['out']} continues it, or choose "
                             "another --out")
        cfg["world_size"] = ctx.world
        device = torch.device(device or devices.default_device(mps=False))
        sp = cfg["split"]
        train, val = split(find_items(cfg["data"]), sp["val_fraction"], sp["seed"], sp["val_list"])
        if not a.resume and ctx.is_main:  # hashed once the data are known to be fine (rank 0 writes them)
            cfg["sources"] = sources(cfg["networks"])
        hp = cfg["hparams"]
        sched = Schedule(max_steps=hp["max_steps"], batch_size=hp["batch_size"], seed=cfg["seed"],
                         save_every=cfg["save_every"], val_every=cfg["val_every"], image_every=cfg["image_every"],
                         board_every=cfg["board_every"], val_batch_size=hp["test_batch_size"],
                         val_batches=cfg.get("val_batches"), workers=cfg["workers"], hflip=cfg["hflip"],
                         precision=cfg["precision"], progress=not cfg["no_progress"],
                         mismatch_p=hp["mismatch_probability"])
        if ctx.is_main:
            print(f"stage {cfg['stage']}: {len(train)} training, {len(val)} validation images; batch "
                  f"{sched.batch_size} over {ctx.world} process(es) on {device}; run folder {cfg['out']}")
        torch.manual_seed(cfg["seed"])
        parts = build_parts(cfg, device, torch.float32)
        trainer = Trainer(parts, train, val, cfg["out"], sched, cfg, device, torch.float32, ctx)
        if a.resume:
            trainer.resume(checkpoint.load(ckpt))
        step = trainer.run()
        trainer.log.close()
        if ctx.is_main:
            print(f"step {step}/{sched.max_steps}: checkpoint {ckpt}")
            if step >= sched.max_steps and not cfg["no_export"]:
                bundle = os.path.join(cfg["out"], BUNDLE_NAME)
                export_model(parts.model, checkpoint.load(ckpt), bundle)
                print(f"wrote {bundle}")
        return 0 if step >= sched.max_steps else 130
    finally:
        distributed.shutdown(ctx)


def run_export(a) -> int:
    from ..training.export import export_run

    path = export_run(a.run_dir, a.output)
    print(f"wrote {path}")
    return 0
