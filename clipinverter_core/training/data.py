"""Training data: captioned image folders, their train/validation split, and the per-rank batches.

Two layouts of DIR (the first found wins):
- `images/NAME.jpg` + `captions/NAME.txt` (the official / Multi-Modal-CelebA-HQ one): paired by file stem, one
  caption per line, one line drawn per fetch. A file without its partner is refused, naming it (the official
  code pairs sorted lists by position, so one missing file would shift every caption after it).
- Hugging Face imagefolder: `metadata.jsonl` or `metadata.csv` with `file_name` and `text`; several rows for one
  file are several captions of it.
Each fetch gives the image resized to 256x256 as the editor's input (images.pil_to_encoder_input) in [-1, 1],
flipped left-right with probability `hflip` (training only), and one caption. Every random choice is a pure
function of (seed, epoch, index), so the data do not depend on the number of ranks, the workers or a resume.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError, InputError
from ..images import load_image, pil_to_encoder_input

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
METADATA_FILES = ("metadata.jsonl", "metadata.csv")


@dataclass(frozen=True)
class Item:
    """One picture and its captions (a caption file to read, or the texts themselves)."""
    name: str
    image: str
    captions: tuple[str, ...] = ()
    caption_file: str | None = None


def find_items(root: str) -> list[Item]:
    """The data set's items, sorted by name; DataError naming the first file that breaks the layout."""
    if not os.path.isdir(root):
        raise DataError(f"no data folder at {root}")
    if os.path.isdir(os.path.join(root, "images")) and os.path.isdir(os.path.join(root, "captions")):
        items = _paired_folders(root)
    else:
        meta = next((os.path.join(root, m) for m in METADATA_FILES if os.path.isfile(os.path.join(root, m))), None)
        if meta is None:
            raise DataError(f"{root}: neither images/ + captions/ nor metadata.jsonl / metadata.csv "
                            "(file_name, text); see the README's Training section")
        items = _imagefolder(root, meta)
    if not items:
        raise DataError(f"{root}: no images")
    for it in items:  # a bad file is refused now, not at step 50,000
        read_captions(it)
        _check_image(it.image)
    return items


def _check_image(path: str) -> None:
    """Reads the image's header (fast); a file that is not an image is refused, naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.size
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None


def _stems(folder: str, exts: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for f in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(f)
        if ext.lower() not in exts or f.startswith("."):
            continue
        if stem in found:
            raise DataError(f"{os.path.join(folder, f)}: a second file for '{stem}' (also {found[stem]})")
        found[stem] = os.path.join(folder, f)
    return found


def _paired_folders(root: str) -> list[Item]:
    images = _stems(os.path.join(root, "images"), IMAGE_EXTS)
    captions = _stems(os.path.join(root, "captions"), (".txt",))
    for stem, path in images.items():
        if stem not in captions:
            raise DataError(f"{path}: no caption file {os.path.join(root, 'captions', stem + '.txt')}")
    for stem, path in captions.items():
        if stem not in images:
            raise DataError(f"{path}: no image {stem}.* in {os.path.join(root, 'images')}")
    return [Item(stem, images[stem], caption_file=captions[stem]) for stem in sorted(images)]


def _imagefolder(root: str, meta: str) -> list[Item]:
    rows = _read_jsonl(meta) if meta.endswith(".jsonl") else _read_csv(meta)
    texts: dict[str, list[str]] = {}
    for line, row in rows:
        if "file_name" not in row or "text" not in row:
            raise DataError(f"{meta}, line {line}: needs 'file_name' and 'text'")
        name, text = str(row["file_name"]), row["text"]
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            raise DataError(f"{meta}, line {line}: no image at {path}")
        for t in (text if isinstance(text, list) else [text]):
            if not isinstance(t, str) or not t.strip():
                raise DataError(f"{meta}, line {line}: empty caption for {name}")
            texts.setdefault(name, []).append(t.strip())
    return [Item(os.path.splitext(n)[0], os.path.join(root, n), tuple(t)) for n, t in sorted(texts.items())]


def _read_jsonl(path: str):
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}, line {n}: not JSON ({e.msg})") from None


def _read_csv(path: str):
    with open(path, encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.DictReader(f), 2):
            yield n, row


def read_captions(item: Item) -> tuple[str, ...]:
    """The item's captions: its own texts, or the non-blank lines of its caption file."""
    if item.caption_file is None:
        return item.captions
    try:
        with open(item.caption_file, encoding="utf-8") as f:
            lines = tuple(s.strip() for s in f.read().splitlines() if s.strip())
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{item.caption_file}: not a readable text file ({e})") from None
    if not lines:
        raise DataError(f"{item.caption_file}: empty caption file (one caption per line)")
    return lines


# --- split -------------------------------------------------------------------------------------------------
def split(items: list[Item], val_fraction: float = 0.0, seed: int = 0,
          val_list: str | None = None) -> tuple[list[Item], list[Item]]:
    """(train, validation): the names in `val_list` (one per line, with or without extension), or a seeded
    random `val_fraction` of the items."""
    if val_list is not None:
        with open(val_list, encoding="utf-8") as f:
            wanted = [os.path.splitext(s.strip())[0] for s in f if s.strip()]
        names = {it.name for it in items}
        missing = [w for w in wanted if w not in names]
        if missing:
            raise DataError(f"{val_list}: '{missing[0]}' is not in the data set ({len(missing)} names missing)")
        chosen = set(wanted)
    else:
        if not 0.0 <= val_fraction < 1.0:
            raise DataError(f"--val-fraction must be in [0, 1), got {val_fraction}")
        n_val = int(round(val_fraction * len(items)))
        order = np.random.default_rng(seed).permutation(len(items))
        chosen = {items[i].name for i in order[:n_val]}
    return [it for it in items if it.name not in chosen], [it for it in items if it.name in chosen]


# --- fetching ----------------------------------------------------------------------------------------------
class CaptionedImages(torch.utils.data.Dataset):
    """dataset[(epoch, index)] -> (image (3, 256, 256) in [-1, 1], caption)."""

    def __init__(self, items: list[Item], hflip: float = 0.0, seed: int = 0):
        self.items, self.hflip, self.seed = list(items), hflip, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, str]:
        epoch, index = key
        item = self.items[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        captions = read_captions(item)
        caption = captions[int(rng.integers(len(captions)))]
        flip = rng.random() < self.hflip
        try:
            x = pil_to_encoder_input(load_image(item.image))[0]
        except InputError as e:  # e.g. truncated after its header
            raise DataError(str(e)) from None
        return (x.flip(-1) if flip else x), caption


class ShardedBatches(torch.utils.data.Sampler):
    """Batches of (epoch, index) keys for one rank: the global batch `b` (of `global_batch` keys) is the
    seeded permutation of epoch e (DistributedSampler's seed + epoch rule), cut in `world` equal contiguous
    slices, rank r reading slice r. Incomplete global batches are dropped (drop_last). Starting at `start`
    (the steps already done) skips them without reading anything: a resumed run reads what it would have."""

    def __init__(self, n: int, global_batch: int, rank: int = 0, world: int = 1, seed: int = 0, start: int = 0,
                 shuffle: bool = True, steps: int | None = None):
        if global_batch % world:
            raise DataError(f"the batch ({global_batch}) must be a multiple of the number of processes ({world})")
        if n < global_batch:
            raise DataError(f"{n} images, fewer than one batch of {global_batch}")
        self.n, self.b, self.rank, self.world = n, global_batch, rank, world
        self.seed, self.start, self.shuffle, self.steps = seed, start, shuffle, steps
        self.per_epoch = n // global_batch

    def __len__(self) -> int:
        return self.steps if self.steps is not None else self.per_epoch

    def __iter__(self):
        local = self.b // self.world
        step, order, epoch = self.start, None, None
        while self.steps is None or step < self.start + self.steps:
            e, k = divmod(step, self.per_epoch)
            if e != epoch:
                epoch = e
                order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + e)).tolist() \
                    if self.shuffle else list(range(self.n))
            glob = order[k * self.b:(k + 1) * self.b]
            yield [(e, i) for i in glob[self.rank * local:(self.rank + 1) * local]]
            step += 1


def loader(dataset: CaptionedImages, sampler: ShardedBatches, workers: int = 0) -> torch.utils.data.DataLoader:
    """The batches as (images (b, 3, 256, 256), captions list[str])."""
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                       persistent_workers=workers > 0)
