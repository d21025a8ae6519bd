"""Rows of scores -> means, CSV, JSON and a plain-text table (what `evaluate` writes and the node shows).

A row is a dict: `image`, `prompt`, `strength`, then one float per score column. Mean rows have
image = MEAN_ROW (over the images of one prompt and strength) or ALL_ROWS (over every row).
"""
from __future__ import annotations

import csv
import json
import math
from collections import defaultdict

from ..fileio import atomic_output

KEYS = ("image", "prompt", "strength")
IMAGE_COLUMNS = ("clip_score", "directional", "identity", "lpips")  # per image (skipped ones left out)
SET_COLUMNS = ("fid", "kid", "kid_std")  # per prompt and strength, on its mean row
MEAN_ROW, ALL_ROWS = "(mean)", "(all)"
DIGITS = 4  # decimals in the text table


def mean_rows(rows: list[dict], columns: list[str]) -> list[dict]:
    """One mean row per (prompt, strength), in order of first appearance, then one over all rows."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["prompt"], r["strength"])].append(r)
    out = [{"image": MEAN_ROW, "prompt": p, "strength": s, "n": len(g), **_means(g, columns)}
           for (p, s), g in groups.items()]
    if len(groups) > 1:
        out.append({"image": ALL_ROWS, "prompt": "", "strength": "", "n": len(rows), **_means(rows, columns)})
    return out


def _means(rows: list[dict], columns: list[str]) -> dict[str, float]:
    out = {}
    for c in columns:
        vals = [r[c] for r in rows if c in r and not math.isnan(r[c])]
        out[c] = sum(vals) / len(vals) if vals else math.nan
    return out


def write_csv(path: str, rows: list[dict], columns: list[str], keys: tuple = KEYS) -> None:
    """Atomically; empty cells where a row has no value (set columns on image rows)."""
    fields = list(keys) + columns
    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fields, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: _cell(r.get(k, "")) for k in fields})


def _cell(v):
    return "" if isinstance(v, float) and math.isnan(v) else v


def write_json(path: str, report: dict) -> None:
    """Atomically; NaN becomes null (strict JSON)."""
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(_nan_to_none(report), f, indent=2, allow_nan=False)
            f.write("\n")


def _nan_to_none(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {k: _nan_to_none(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_nan_to_none(x) for x in v]
    return v


def text_table(rows: list[dict], columns: list[str], skipped: dict[str, str] | None = None,
               keys: tuple[str, ...] = KEYS) -> str:
    """Fixed-width text: a header, one line per row, then a line per skipped score saying why."""
    fields = list(keys) + columns
    cells = [fields] + [[_text(r.get(k, ""), k) for k in fields] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(fields))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines += [f"{name}: skipped ({why})" for name, why in (skipped or {}).items()]
    return "\n".join(lines)


def _text(v, key: str) -> str:
    if isinstance(v, float) and key == "strength":
        return f"{v:g}"
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.{DIGITS}f}"
    return str(v)
