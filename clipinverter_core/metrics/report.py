"""The measurement behind `evaluate`: every image x prompt x strength edited once and scored, then the report.

measure() keeps no full-size edit: each one is scored, its Inception features kept (FID/KID) and a thumbnail
kept (the sheet) as soon as it is decoded, so a folder of any size fits in memory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError
from ..images import generator_to_unit, unit_to_uint8
from . import SOURCE_TEXT, fidelity
from .edits import load_networks, score_edits
from .pictures import TILE, contact_sheet, save_image, strength_plot
from .scores import image_embeddings
from .table import ALL_ROWS, IMAGE_COLUMNS, SET_COLUMNS, mean_rows, write_csv, write_json

PLOTTED = (("clip_score", "CLIP score (cosine)"), ("identity", "identity (ArcFace cosine)"))
TUNING_COLUMNS = ("tuning_l2_before", "tuning_lpips_before", "tuning_l2_after", "tuning_lpips_after")


def _tuning_columns(tuning) -> dict[str, float]:
    """What identity tuning bought on an image: its reconstruction's L2 and LPIPS before and after."""
    return {"tuning_l2_before": tuning.first["l2"], "tuning_lpips_before": tuning.first["lpips"],
            "tuning_l2_after": tuning.last["l2"], "tuning_lpips_after": tuning.last["lpips"]}


@dataclass
class Measured:
    names: list[str]
    prompts: list[str]
    strengths: list[float]
    rows: list[dict]
    means: list[dict]
    columns: list[str]
    skipped: dict[str, str]
    inputs: list[np.ndarray]  # thumbnails (TILE, TILE, 3) uint8
    edits: dict[tuple[int, float], list[np.ndarray]]
    meta: dict = field(default_factory=dict)


def _thumb(images: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> (TILE, TILE, 3) uint8."""
    t = F.interpolate(images.float(), size=(TILE, TILE), mode="bilinear", align_corners=False, antialias=True)
    return unit_to_uint8(generator_to_unit(t[0])).permute(1, 2, 0).cpu().numpy()


def _inception(explicit: str | None, folders, n_images: int, device, skipped: dict):
    try:
        path = fidelity.find_inception(explicit, folders)
    except CheckpointError as e:
        if explicit:
            raise
        skipped["fid"] = str(e)
        return None
    if n_images < fidelity.MIN_IMAGES:
        skipped["fid"] = f"FID and KID need at least {fidelity.MIN_IMAGES} images, got {n_images}"
        return None
    try:
        return fidelity.load_inception(path, device)
    except ImportError:
        skipped["fid"] = "torch-fidelity is not installed (pip install torch-fidelity)"
        return None


@torch.inference_mode()
def measure(model, names: list[str], x: torch.Tensor, prompts: list[str], strengths: list[float],
            remap_strength: float = 1.0, source_text: str = SOURCE_TEXT, arcface: str | None = None,
            alexnet: str | None = None, inception: str | None = None, folders: list[str] | None = None,
            progress: bool = True, tuned: list | None = None, tunings: list | None = None) -> Measured:
    """model: a pipeline.CLIPInverter; x: (N, 3, 256, 256) aligned faces in [-1, 1]. `tuned`: a model per image
    whose generator is tuned (identity tuning): each edit is decoded by it too and scored again, as
    `<score>_tuned`; `tunings`: what each image's tuning bought (its reconstruction before and after)."""
    from tqdm import tqdm

    from ..batching import map_chunks
    from ..latents import Latent

    nets, skipped = load_networks(arcface, alexnet, folders, model.device)
    inc = _inception(inception, folders, len(names), model.device, skipped)
    t, src = model.encode_text(prompts), model.encode_text([source_text])
    clip = model.clip
    input_emb = torch.cat([image_embeddings(clip, x[i:i + 1]) for i in range(len(x))])
    input_inc = torch.cat([fidelity.inception_features(inc, x[i:i + 1]) for i in range(len(x))]) if inc else None
    edit_inc: dict[tuple[int, float], list[torch.Tensor]] = {(p, s): [] for p in range(len(prompts)) for s in strengths}
    thumbs: dict[tuple[int, float], list[np.ndarray]] = {k: [] for k in edit_inc}
    rows = []
    bar = tqdm(total=len(x) * len(edit_inc), desc="evaluate", unit="edit", disable=not progress)
    pairs = [(p, s) for s in strengths for p in range(len(prompts))]
    for i in range(len(x)):
        xi, feats = x[i:i + 1], model.features(x[i:i + 1])

        def edit(p: int, s: float) -> Latent:
            w_hat = model.edit_features(feats, t[p:p + 1], s)[1]
            return model.remap(w_hat, t[p:p + 1], remap_strength) if remap_strength != 0 else Latent(w_hat)

        def score(a: int, b: int):
            """Edits of image i by pairs a..b-1, scored in one batch (the input's embeddings computed once); with
            a tuned model, the same codes decoded by it and scored too."""
            latents = [edit(*pairs[k]) for k in range(a, b)]
            targets = torch.cat([t[p:p + 1] for p, _ in pairs[a:b]])
            out = []
            for m in [model] + ([tuned[i]] if tuned else []):
                edits = torch.cat([m.decode(lat).clamp(-1, 1) for lat in latents])
                out.append((edits, score_edits(clip, xi, edits, targets, src, input_clip_emb=input_emb[i:i + 1],
                                               **nets)))
            return out[0][0], out[0][1], out[1][1] if tuned else {}

        start = 0
        for edits, scores, tuned_scores in map_chunks(score, len(pairs)):
            edits_inc = None if inc is None else fidelity.inception_features(inc, edits)
            for k in range(len(edits)):
                p, s = pairs[start + k]
                rows.append({"image": names[i], "prompt": prompts[p], "strength": s,
                             **{c: float(v[k]) for c, v in scores.items()},
                             **{f"{c}_tuned": float(v[k]) for c, v in tuned_scores.items()},
                             **(_tuning_columns(tunings[i]) if tunings else {}), "_order": (p, s, i)})
                thumbs[(p, s)].append(_thumb(edits[k:k + 1]))
                if inc is not None:
                    edit_inc[(p, s)].append(edits_inc[k:k + 1])
                bar.update(1)
            start += len(edits)
    bar.close()
    rows.sort(key=lambda r: (r["_order"][0], strengths.index(r["_order"][1]), r["_order"][2]))
    for r in rows:
        del r["_order"]
    columns = [c for c in IMAGE_COLUMNS if c in rows[0]]
    columns += [f"{c}_tuned" for c in columns if f"{c}_tuned" in rows[0]]
    columns += [c for c in TUNING_COLUMNS if c in rows[0]]
    means = mean_rows(rows, columns)
    if inc is not None:
        for m in means:
            if m["image"] != ALL_ROWS:
                key = (prompts.index(m["prompt"]), m["strength"])
                m.update(fidelity.fid_kid(input_inc, torch.cat(edit_inc[key])))
        columns += list(SET_COLUMNS)
    meta = {"prompts": prompts, "strengths": strengths, "source_text": source_text,
            "remap_strength": remap_strength, "n_images": len(names)}
    return Measured(names, prompts, strengths, rows, means, columns, skipped,
                    [_thumb(x[i:i + 1]) for i in range(len(x))], thumbs, meta)


def _caption(row: dict) -> str:
    text = f"CLIP {row['clip_score']:.3f}"
    return text + (f"  ID {row['identity']:.2f}" if "identity" in row else "")


def write_report(m: Measured, folder: str) -> list[str]:
    """metrics.csv, metrics.json, sheet.png, strength.png (each atomically); returns the paths written (a plot
    it cannot draw is added to m.skipped)."""
    os.makedirs(folder, exist_ok=True)
    paths = {name: os.path.join(folder, name) for name in ("metrics.csv", "metrics.json", "sheet.png",
                                                            "strength.png")}
    write_csv(paths["metrics.csv"], m.rows + m.means, m.columns)
    title = "made on stand-in RANDOM weights (not a trained model)" if m.meta.get("standin") else ""
    captions = {(m.names.index(r["image"]), m.prompts.index(r["prompt"]), r["strength"]): _caption(r)
                for r in m.rows}
    save_image(paths["sheet.png"], contact_sheet(m.inputs, m.names, m.edits, m.prompts, m.strengths, captions,
                                                 title))
    plotted = [(c, label) for c, label in PLOTTED if c in m.columns]
    try:
        strength_plot(paths["strength.png"], m.means, m.prompts, m.strengths, plotted,
                      title)
    except ImportError:
        m.skipped["strength.png"] = "matplotlib is not installed (pip install matplotlib)"
        del paths["strength.png"]
    write_json(paths["metrics.json"], {"meta": m.meta, "columns": m.columns, "skipped": m.skipped,
                                       "rows": m.rows, "means": m.means})
    return list(paths.values())
