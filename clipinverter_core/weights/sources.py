"""Where the official weights come from: models/catalog.json, the one list the CLI, the nodes and the
downloader read."""
from __future__ import annotations

import functools
import json
import os

from .. import PACK_ROOT

CATALOG = os.path.join(PACK_ROOT, "models", "catalog.json")


@functools.lru_cache(maxsize=None)
def read_catalog(path: str = CATALOG) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def official_files_help(catalog: str = CATALOG) -> str:
    """Which files to get, from where, and the command that converts them (a few lines of text)."""
    cat = read_catalog(catalog)
    src = {s["role"]: s for s in cat["sources"]}
    lines = ["The official weights (models/README.md of this pack lists them):"]
    lines += [f"  {s['file']:<22}{s['url']}" for s in cat["sources"]]
    lines += ["then:",
              f"  python -m clipinverter_core convert --clipinverter {src['clipinverter']['file']} "
              f"--e4e {src['e4e']['file']} --clip {src['clip']['file']} -o {cat['bundle']['file']}",
              "or, to fetch and convert them in one go: python -m clipinverter_core download --to FOLDER"]
    return "\n".join(lines)
