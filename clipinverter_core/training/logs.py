"""What a run shows: TensorBoard scalars (`train/<name>`, `val/<name>` under the official loss names) in
RUN_DIR/logs, and PNG grids in RUN_DIR/images: one row per shown sample, input | edit | cycle recovery
(| stage 2's edit without the remapper), with the sample's own caption and the caption the edit aims at."""
from __future__ import annotations

import os

import numpy as np
import torch

from ..images import generator_to_unit, save_png, unit_to_uint8

COLUMNS = (("input", "input"), ("edit", "edit"), ("recovered", "cycle recovery"), ("edit_fixed", "edit, no remapper"))
TILE = 256        # pixels per picture in the grid
TEXT_ROWS = 2     # caption lines above each row of pictures
LINE_PX = 14      # height of one caption line
SHOWN = 4         # samples per grid at most
GAP = 4           # white pixels between pictures


class RunLog:
    """Writes only where `enabled` (rank 0)."""

    def __init__(self, run_dir: str, enabled: bool = True):
        self.run_dir, self.enabled = run_dir, enabled
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(log_dir=os.path.join(run_dir, "logs"))

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"{prefix}/{k}", float(v), step)
            self.writer.flush()

    def grid(self, prefix: str, step: int, images: dict[str, torch.Tensor], own: list[str],
             target: list[str]) -> str | None:
        """Writes RUN_DIR/images/<prefix>/<step>.png (atomically); returns its path."""
        if not self.enabled:
            return None
        path = os.path.join(self.run_dir, "images", prefix, f"{step:07d}.png")
        save_png(path, grid_image(images, own, target))
        return path

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _tiles(t: torch.Tensor, n: int) -> np.ndarray:
    t = t[:n].detach().float().cpu()
    if t.shape[-1] != TILE:
        t = torch.nn.functional.interpolate(t, size=(TILE, TILE), mode="bilinear", align_corners=False,
                                            antialias=True)
    return unit_to_uint8(generator_to_unit(t)).permute(0, 2, 3, 1).numpy()


def grid_image(images: dict[str, torch.Tensor], own: list[str], target: list[str]) -> np.ndarray:
    """(H, W, 3) uint8: a header of column names, then per sample two caption lines and its pictures."""
    from PIL import Image, ImageDraw

    cols = [(k, title) for k, title in COLUMNS if k in images]
    n = min(SHOWN, len(own), *(images[k].shape[0] for k, _ in cols))
    tiles = {k: _tiles(images[k], n) for k, _ in cols}
    row_h = TEXT_ROWS * LINE_PX + TILE
    step = TILE + GAP
    canvas = Image.new("RGB", (step * len(cols) - GAP, LINE_PX + n * row_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, (_, title) in enumerate(cols):
        draw.text((c * step + 4, 1), title, fill=(0, 0, 0))
    chars = step * len(cols) // 6  # the default bitmap font is about 6 pixels wide
    for i in range(n):
        top = LINE_PX + i * row_h
        draw.text((4, top + 1), _fit(f"own: {own[i]}", chars), fill=(0, 0, 0))
        draw.text((4, top + 1 + LINE_PX), _fit(f"target: {target[i]}", chars), fill=(160, 0, 0))
        for c, (k, _) in enumerate(cols):
            canvas.paste(Image.fromarray(tiles[k][i]), (c * step, top + TEXT_ROWS * LINE_PX))
    return np.asarray(canvas)


def _fit(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars - 3] + "..."
