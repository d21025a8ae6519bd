"""Edit Metrics: how far an edit followed its text (CLIP score, direction) and kept the person (ArcFace identity).

The scores are clipinverter_core.metrics.score_edits, the same code `evaluate` and training's validation use.
Pairs broadcast as the edit nodes do (batching.pair_indices): one original and N edits (N prompts of one face), or
N and N. ArcFace is loaded for the run and handed to ComfyUI's model management beside the inverter's networks.
"""
from __future__ import annotations

import math
import os

import folder_paths
import torch
from comfy_api.v0_0_2 import io

from ..clipinverter_core.batching import pair_indices, take
from ..clipinverter_core.errors import InputError
from ..clipinverter_core.lossnets import LOSS_FILES, load_arcface
from ..clipinverter_core.metrics import SOURCE_TEXT, score_edits
from ..clipinverter_core.metrics.table import text_table
from . import types
from .images import to_core, to_encoder_input
from .memory import LoadedInverter, companion, run_chunks
from .paths import FOLDER

NO_FILE = "none"
WEIGHT_EXTENSIONS = (".pth", ".pt")
COLUMNS = ["clip_score", "directional", "identity"]
KEYS = ("edit", "original", "embedding")


def weight_files() -> list[str]:
    """The .pth / .pt files of the clipinverter model folder(s): where model_ir_se50.pth goes."""
    names = {f for p in folder_paths.get_folder_paths(FOLDER) if os.path.isdir(p) for f in os.listdir(p)
             if f.lower().endswith(WEIGHT_EXTENSIONS)}
    return sorted(names)


def _full_path(name: str) -> str | None:
    for folder in folder_paths.get_folder_paths(FOLDER):
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return None


def arcface_choice(node: str, arcface: str) -> bool | str:
    """validate_inputs of an ArcFace combo: True, or why the file is not there."""
    if arcface == NO_FILE or _full_path(arcface) is not None:
        return True
    return f"{node}: '{arcface}' is not in the '{FOLDER}' model folder; put {LOSS_FILES['arcface']} there"


def _arcface(name: str, model: LoadedInverter):
    """The ArcFace file `name` loaded on the inverter's offload device, in a ModelPatcher (memory.companion) that
    ComfyUI loads with the inverter's networks; None for 'none'."""
    if name == NO_FILE:
        return None
    path = _full_path(name)
    if path is None:
        raise FileNotFoundError(f"Edit Metrics: '{name}' is not in the '{FOLDER}' model folder "
                                f"({', '.join(folder_paths.get_folder_paths(FOLDER))})")
    return companion(load_arcface(path, model.patcher.offload_device), model)


class EditMetrics(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        files = weight_files()
        arcface = LOSS_FILES["arcface"]
        return io.Schema(
            node_id="CLIPInverterEditMetrics",
            display_name="Edit Metrics",
            category="CLIPInverter",
            description="Scores edits: CLIP score (does the edit match its text), directional CLIP similarity (did "
                        "it change the way the text differs from a neutral one) and ArcFace identity (is it still "
                        "the same person). The same numbers as `python -m clipinverter_core evaluate`.",
            inputs=[
                types.Model.Input("model", tooltip="From Load Inverter: its CLIP scores the pictures."),
                io.Image.Input("original", tooltip="The faces before the edit (aligned crops). One face for N "
                                                   "edits, or one per edit."),
                io.Image.Input("edited", tooltip="The edits, e.g. StyleGAN Decode's output."),
                types.Embedding.Input("embedding", tooltip="The embedding the edits aimed at (Encode Text): one, "
                                      "or one per edit."),
                io.String.Input("source_text", default=SOURCE_TEXT,
                                tooltip="A neutral description of the originals; the directional score compares "
                                        "the image change with the change from this text to the target."),
                io.Combo.Input("arcface", options=[NO_FILE] + files,
                               default=arcface if arcface in files else NO_FILE,
                               tooltip=f"ArcFace IR-SE50 weights ({arcface}, the network the training's identity "
                                       f"loss uses) from the {FOLDER} model folder; 'none' leaves identity out."),
            ],
            outputs=[
                io.String.Output(display_name="table", tooltip="One line per edit and a mean line: clip_score, "
                                 "directional, identity (- when no ArcFace file is chosen)."),
                io.Float.Output(display_name="clip_score", tooltip="Mean CLIP score (cosine, -1..1) of the edits "
                                "against their embeddings."),
                io.Float.Output(display_name="identity", tooltip="Mean ArcFace cosine (-1..1, 1 = the same face) "
                                "between originals and edits; NaN when no ArcFace file is chosen."),
            ],
        )

    @classmethod
    def validate_inputs(cls, arcface) -> bool | str:
        return arcface_choice("Edit Metrics", arcface)

    @classmethod
    def execute(cls, model, original, edited, embedding, source_text, arcface) -> io.NodeOutput:
        if not source_text.strip():
            raise InputError("Edit Metrics: the source text is empty (e.g. 'a photo of a face')")
        idx_o, idx_e = pair_indices(original.shape[0], edited.shape[0], "originals", "edits")
        pairs, idx_t = pair_indices(len(idx_e), embedding.shape[0], "edits", "embeddings")
        idx_o, idx_e = [idx_o[p] for p in pairs], [idx_e[p] for p in pairs]  # per scored edit
        net = _arcface(arcface, model)
        source = run_chunks(model, 1, lambda inv, a, b: inv.encode_text([source_text.strip()]))[0]

        def work(inv, a, b):  # edits a..b of the pairing, scored as one batch on the device
            dev = inv.device
            originals = to_encoder_input(take(original, idx_o[a:b]))  # this chunk's pictures only
            edits = to_core(take(edited, idx_e[a:b])).float() * 2 - 1
            return score_edits(inv.clip, originals.to(dev), edits.to(dev), take(embedding, idx_t[a:b]).to(dev),
                               source.to(dev), identity_net=None if net is None else net.model)

        n = len(pairs)
        chunks = run_chunks(model, n, work, also=() if net is None else (net,))
        scores = {c: torch.cat([ch[c] for ch in chunks]).tolist() if c in chunks[0] else [math.nan] * n
                  for c in COLUMNS}
        rows = [{"edit": idx_e[i], "original": idx_o[i], "embedding": idx_t[i], **{c: scores[c][i] for c in COLUMNS}}
                for i in range(n)]
        means = {c: _mean([r[c] for r in rows]) for c in COLUMNS}
        table = text_table(rows + [{"edit": "mean", "original": "", "embedding": "", **means}], COLUMNS,
                           None if net is not None else {"identity": "no ArcFace file chosen"}, keys=KEYS)
        return io.NodeOutput(table, means["clip_score"], means["identity"])


def _mean(values: list[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan
