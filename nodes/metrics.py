"""Edit Metrics: how far an edit followed its text (CLIP score, direction) and kept the person (ArcFace identity).

The scores are clipinverter_core.metrics.score_edits, the same code `evaluate` and training's validation use.
Pairs broadcast as the edit nodes do: one original and N edits (N prompts of one face), or N and N.
"""
from __future__ import annotations

import math
import os

import folder_paths
import torch
from comfy_api.latest import io

from ..clipinverter_core.errors import InputError
from ..clipinverter_core.lossnets import LOSS_FILES, load_arcface
from ..clipinverter_core.metrics import SOURCE_TEXT, score_edits
from ..clipinverter_core.metrics.table import text_table
from ..clipinverter_core.pipeline import pair_indices
from . import types
from .edit import images_to_encoder_input
from .memory import run_chunks
from .paths import FOLDER

NO_FILE = "none"
WEIGHT_EXTENSIONS = (".pth", ".pt")
COLUMNS = ["clip_score", "directional", "identity"]
KEYS = ("edit", "original", "embedding")
_arcface_cache: dict[str, torch.nn.Module] = {}  # path -> the network on the CPU, loaded once per session


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


def _arcface(name: str) -> torch.nn.Module | None:
    if name == NO_FILE:
        return None
    path = _full_path(name)
    if path is None:
        raise FileNotFoundError(f"Edit Metrics: '{name}' is not in the '{FOLDER}' model folder "
                                f"({', '.join(folder_paths.get_folder_paths(FOLDER))})")
    if path not in _arcface_cache:
        _arcface_cache[path] = load_arcface(path, "cpu")
    return _arcface_cache[path]


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
        if arcface == NO_FILE or _full_path(arcface) is not None:
            return True
        return f"Edit Metrics: '{arcface}' is not in the '{FOLDER}' model folder; put {LOSS_FILES['arcface']} there"

    @classmethod
    def execute(cls, model, original, edited, embedding, source_text, arcface) -> io.NodeOutput:
        if not source_text.strip():
            raise InputError("Edit Metrics: the source text is empty (e.g. 'a photo of a face')")
        idx_o, idx_e = pair_indices(original.shape[0], edited.shape[0], "originals", "edits")
        idx_e2, idx_t = pair_indices(len(idx_e), embedding.shape[0], "edits", "embeddings")
        net = _arcface(arcface)
        source = run_chunks(model, 1, lambda inv, a, b: inv.encode_text([source_text.strip()]))[0]

        def work(inv, a, b):  # edits a..b of the pairing, scored as one batch on the device
            dev = inv.device
            o = torch.tensor([idx_o[idx_e2[i]] for i in range(a, b)])
            e = torch.tensor([idx_e[idx_e2[i]] for i in range(a, b)])
            t = torch.tensor(idx_t[a:b])
            ident = None if net is None else net.to(dev)
            originals = images_to_encoder_input(original[o])  # this chunk's pictures only
            edits = edited[e].movedim(-1, 1)[:, :3].float() * 2 - 1
            return score_edits(inv.clip, originals.to(dev), edits.to(dev), embedding[t].to(dev),
                               source.to(dev), identity_net=ident)

        try:
            chunks = run_chunks(model, len(idx_e2), work)
        finally:
            if net is not None:
                net.to("cpu")
        scores = {c: torch.cat([ch[c] for ch in chunks]).tolist() if c in chunks[0] else [math.nan] * len(idx_e2)
                  for c in COLUMNS}
        rows = [{"edit": idx_e[idx_e2[i]], "original": idx_o[idx_e2[i]], "embedding": idx_t[i],
                 **{c: scores[c][i] for c in COLUMNS}} for i in range(len(idx_e2))]
        means = {c: _mean([r[c] for r in rows]) for c in COLUMNS}
        table = text_table(rows + [{"edit": "mean", "original": "", "embedding": "", **means}], COLUMNS,
                           None if net is not None else {"identity": "no ArcFace file chosen"}, keys=KEYS)
        return io.NodeOutput(table, means["clip_score"], means["identity"])


def _mean(values: list[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan
