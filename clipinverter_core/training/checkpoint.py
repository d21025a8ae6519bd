"""Training checkpoints: one safetensors file holding everything a run needs to continue exactly.

Tensors: `param.<official name>` (the trainable weights), `optim.<i>.<key>` (the optimiser state of parameter i,
flattened), `rng.torch`, `rng.cuda.<d>`, `rng.numpy`, `rng.python`. Metadata (strings): format, format_version,
step, config (JSON: the run's arguments and hyper-parameters), data_order (JSON), optim_groups and
optim_scalars (JSON: the optimiser's hyper-parameters and its non-tensor state), rng_numpy and rng_python (JSON:
the parts of those states that are not arrays). Written atomically (fileio.write_tagged); nothing is pickled.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch

from .. import devices
from ..fileio import read_tagged, write_tagged

FORMAT = "clipinverter.training_checkpoint"
FORMAT_VERSION = 1
FILE_NAME = "checkpoint.safetensors"


@dataclass
class RunState:
    step: int
    config: dict
    params: dict[str, torch.Tensor]
    optimizer: dict
    rng: dict = field(default_factory=dict)
    data_order: dict = field(default_factory=dict)


def checkpoint_path(run_dir: str) -> str:
    return os.path.join(run_dir, FILE_NAME)


# --- optimiser state <-> tensors + JSON ----------------------------------------------------------------------
def flatten_optimizer(sd: dict) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors, scalars = {}, {}
    for i, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{i}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(i), {})[k] = v
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"optim_groups": json.dumps(groups), "optim_scalars": json.dumps(scalars)}


def unflatten_optimizer(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> dict:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, i, k = key.split(".", 2)
            state.setdefault(int(i), {})[k] = v
    for i, st in json.loads(meta["optim_scalars"]).items():
        state.setdefault(int(i), {}).update(st)
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in json.loads(meta["optim_groups"])]
    return {"state": state, "param_groups": groups}


# --- random number generators -------------------------------------------------------------------------------
def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """torch (CPU and every CUDA device), numpy and python `random` states, as tensors and JSON."""
    tensors = {"rng.torch": torch.get_rng_state()}
    for d, s in enumerate(devices.cuda_rng_states()):
        tensors[f"rng.cuda.{d}"] = s
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(keys.astype(np.int64))
    version, py_state, py_gauss = random.getstate()
    tensors["rng.python"] = torch.tensor(py_state, dtype=torch.int64)
    meta = {"rng_numpy": json.dumps([kind, int(pos), int(has_gauss), float(gauss)]),
            "rng_python": json.dumps([version, py_gauss])}
    return tensors, meta


def restore_rng(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    devices.set_cuda_rng_states([tensors[k] for k in cuda])
    kind, pos, has_gauss, gauss = json.loads(meta["rng_numpy"])
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, py_gauss = json.loads(meta["rng_python"])
    random.setstate((version, tuple(int(v) for v in tensors["rng.python"].tolist()), py_gauss))


# --- files -------------------------------------------------------------------------------------------------
def save(path: str, step: int, config: dict, params: Mapping[str, torch.Tensor], optimizer: dict,
         data_order: dict) -> None:
    """Writes the run state atomically. `optimizer` is the optimiser's state_dict()."""
    tensors = {f"param.{k}": v.detach().cpu().contiguous() for k, v in params.items()}
    opt_tensors, opt_meta = flatten_optimizer(optimizer)
    rng_tensors, rng_meta = capture_rng()
    tensors.update(opt_tensors)
    tensors.update(rng_tensors)
    meta = {"step": str(step), "config": json.dumps(config), "data_order": json.dumps(data_order), **opt_meta,
            **rng_meta}
    write_tagged(path, tensors, FORMAT, FORMAT_VERSION, meta)


def load(path: str) -> RunState:
    """Reads a checkpoint written by `save`; CheckpointError (one line) for anything else."""
    meta, tensors = read_tagged(path, FORMAT, FORMAT_VERSION, "training checkpoint")
    params = {k[len("param."):]: v for k, v in tensors.items() if k.startswith("param.")}
    rng = {"tensors": {k: v for k, v in tensors.items() if k.startswith("rng.")},
           "meta": {k: meta[k] for k in ("rng_numpy", "rng_python")}}
    return RunState(int(meta["step"]), json.loads(meta["config"]), params, unflatten_optimizer(tensors, meta),
                    rng, json.loads(meta["data_order"]))


def read_config(path: str) -> tuple[int, dict]:
    """(step, config) from the header alone."""
    meta, _ = read_tagged(path, FORMAT, FORMAT_VERSION, "training checkpoint", tensors=False)
    return int(meta["step"]), json.loads(meta["config"])
