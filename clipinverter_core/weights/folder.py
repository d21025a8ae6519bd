"""A model folder holding the official files as they are downloaded (models/catalog.json names them): whether all
three are there, and the bundle they convert into beside them, once, with the one converter (convert.py)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from ..fileio import file_stamp
from .sources import read_catalog

# The CLIP ViT-B/32 files users hold: OpenAI's TorchScript file, and open_clip's safetensors and PyTorch files
# (the catalog's alternative, as the Hugging Face hub names them).
OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


@dataclass(frozen=True)
class OfficialFiles:
    """The three official files in one folder, and the bundle they make there."""
    clipinverter: str
    e4e: str
    clip: str
    bundle: str

    def fingerprint(self) -> str:
        """Changes when any of the three files is replaced (size and modification time)."""
        return ";".join(map(str, (file_stamp(p) for p in (self.clipinverter, self.e4e, self.clip))))


def bundle_name() -> str:
    """The file name the catalog gives the converted bundle (clipinverter_faces.safetensors)."""
    return read_catalog()["bundle"]["file"]


def official_files_in(folder: str) -> OfficialFiles | None:
    """The official files of `folder` when all three are there (any CLIP ViT-B/32 file users hold), else None."""
    src = {s["role"]: s for s in read_catalog()["sources"]}
    found = {}
    for role in ("clipinverter", "e4e", "clip"):
        names = [src[role]["file"]] + (list(OPEN_CLIP_FILES) if role == "clip" else [])
        path = next((os.path.join(folder, n) for n in names if os.path.isfile(os.path.join(folder, n))), None)
        if path is None:
            return None
        found[role] = path
    return OfficialFiles(**found, bundle=os.path.join(folder, bundle_name()))


def convert_in_place(files: OfficialFiles, log: Callable[[str], None] = print) -> str:
    """Converts the official files into files.bundle (convert.convert: weights_only reads, every key and shape
    checked, an atomic write); returns the bundle's path. `log` hears each step (reading each file, hashing,
    writing): a caller can show progress there, or stop the conversion by raising (nothing is left behind)."""
    from .convert import convert

    convert(files.clipinverter, files.e4e, files.clip, files.bundle, log=log)
    return files.bundle
