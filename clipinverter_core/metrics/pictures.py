"""The pictures of a report: a contact sheet (inputs by prompts by strengths, captioned) and a plot of CLIP score
and identity against strength, one line per prompt.

The sheet is drawn with PIL. The plot uses matplotlib (requirements-dev.txt: evaluation is a developer's tool,
the nodes never plot); without it, `strength_plot` raises ImportError and `evaluate` says the plot was skipped.
"""
from __future__ import annotations

import textwrap

import numpy as np

from ..fileio import atomic_output

TILE = 128  # side of one picture on the sheet, pixels
PAD = 6
FONT_SIZE = 13
LINE = FONT_SIZE + 4
WRAP = 24  # characters per header line (a prompt's header spans its strengths' columns)
BACKGROUND, INK = (255, 255, 255), (20, 20, 20)


def _font():
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def contact_sheet(inputs: list[np.ndarray], names: list[str], edits: dict[tuple[int, float], list[np.ndarray]],
                  prompts: list[str], strengths: list[float], captions: dict[tuple[int, int, float], str],
                  title: str = ""):
    """A PIL image. inputs: (H, W, 3) uint8 per image; edits[(prompt index, strength)]: one per image;
    captions[(image index, prompt index, strength)]: the line under that edit (e.g. its scores)."""
    from PIL import Image, ImageDraw

    font = _font()
    cols = 1 + len(prompts) * len(strengths)
    wrapped = [textwrap.wrap(p, WRAP * len(strengths)) or [""] for p in prompts]
    head = PAD + LINE * (bool(title) + max(len(w) for w in wrapped) + 1) + PAD
    cell_h = TILE + LINE + PAD
    sheet = Image.new("RGB", (PAD + cols * (TILE + PAD), head + len(inputs) * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((PAD, PAD), title, fill=INK, font=font)
    top = PAD + LINE * bool(title)
    x0 = PAD + TILE + PAD
    group_w = len(strengths) * (TILE + PAD)
    for p, lines in enumerate(wrapped):
        gx = x0 + p * group_w
        for k, line in enumerate(lines):
            draw.text((gx, top + k * LINE), line, fill=INK, font=font)
        for j, s in enumerate(strengths):
            draw.text((gx + j * (TILE + PAD), head - PAD - LINE), f"strength {s:g}", fill=INK, font=font)
    draw.text((PAD, head - PAD - LINE), "input", fill=INK, font=font)
    for i, (img, name) in enumerate(zip(inputs, names)):
        y = head + i * cell_h
        sheet.paste(_tile(img), (PAD, y))
        draw.text((PAD, y + TILE + 2), _short(name), fill=INK, font=font)
        for p in range(len(prompts)):
            for j, s in enumerate(strengths):
                x = x0 + p * group_w + j * (TILE + PAD)
                sheet.paste(_tile(edits[(p, s)][i]), (x, y))
                draw.text((x, y + TILE + 2), captions.get((i, p, s), ""), fill=INK, font=font)
    return sheet


def _tile(hwc: np.ndarray):
    from PIL import Image

    img = Image.fromarray(hwc)
    return img if img.size == (TILE, TILE) else img.resize((TILE, TILE), Image.LANCZOS)


def _short(name: str, n: int = 18) -> str:
    return name if len(name) <= n else name[:n - 3] + "..."


def save_image(path: str, image) -> None:
    with atomic_output(path) as tmp:
        image.save(tmp, format="PNG")


def strength_plot(path: str, means: list[dict], prompts: list[str], strengths: list[float],
                  scores: list[tuple[str, str]], title: str = "") -> None:
    """Writes a PNG: one panel per (column, label) of `scores`, the mean over images against strength, one line
    per prompt. means: mean rows (table.mean_rows) with 'prompt', 'strength' and the columns."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    fig = Figure(figsize=(4.2 * len(scores) + 2.8, 3.6), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(scores), squeeze=False)[0]
    for ax, (column, label) in zip(axes, scores):
        for p in prompts:
            ys = [next((m[column] for m in means if m["prompt"] == p and m["strength"] == s), np.nan)
                  for s in strengths]
            ax.plot(strengths, ys, marker="o", label=textwrap.shorten(p, 40))
        ax.set_xlabel("edit strength")
        ax.set_ylabel(label)
        ax.set_xticks(strengths)
        ax.grid(alpha=0.3)
    axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize="small", frameon=False)
    if title:
        fig.suptitle(title, fontsize="medium")
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
