"""`convert`, `info`, `download` and `standin`: the commands that make and describe bundles (weights/)."""
from __future__ import annotations

import argparse
import json
import os

from ..weights.sources import official_files_help


def add_parser(sub) -> None:
    c = sub.add_parser("convert", help="official checkpoints -> one safetensors bundle",
                       epilog=official_files_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--clipinverter", required=True, help="pretrained_faces.pt (adapter + generator + remapper)")
    c.add_argument("--e4e", required=True, help="e4e_ffhq_encode.pt (encoder + latent_avg)")
    c.add_argument("--clip", required=True, help="ViT-B-32.pt (OpenAI), or open_clip .safetensors / .bin")
    c.add_argument("-o", "--output", required=True, help="the bundle to write (.safetensors)")
    c.set_defaults(run=run_convert)

    i = sub.add_parser("info", help="what a bundle holds")
    i.add_argument("bundle")
    i.add_argument("--json", action="store_true", help="print the metadata as JSON")
    i.set_defaults(run=run_info)

    d = sub.add_parser("download", help="opt-in: fetch the official weights and convert them into a bundle")
    d.add_argument("--to", required=True, help="folder for the files (e.g. ComfyUI/models/clipinverter)")
    d.add_argument("--no-convert", action="store_true", help="only fetch the three official files")
    d.add_argument("--clip-from", choices=("openai", "huggingface"), default="openai")
    d.add_argument("--base-url", help="fetch every file as URL/<file name> from a mirror of your own")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(run=run_download)

    s = sub.add_parser("standin", help="write a bundle of stand-in RANDOM weights (demos, tests)")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--size", type=int, default=256, help="StyleGAN output size")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(run=run_standin)


def run_convert(a) -> int:
    from ..weights.convert import convert

    convert(a.clipinverter, a.e4e, a.clip, a.output)
    print(f"wrote {a.output} ({os.path.getsize(a.output) / 2**20:.0f} MiB)")
    return 0


def run_info(a) -> int:
    from ..weights.bundle import read_metadata

    meta = read_metadata(a.bundle)
    if a.json:
        print(json.dumps(meta, indent=2))
        return 0
    print(f"bundle:        {a.bundle} ({os.path.getsize(a.bundle) / 2**20:.0f} MiB)")
    print(f"format:        {meta['format']} v{meta['format_version']}")
    print(f"StyleGAN size: {meta['stylegan_size']} ({meta['n_latent']} W+ rows)")
    print(f"components:    {', '.join(json.loads(meta['components']))}")
    print(f"adapter:       {', '.join(json.loads(meta.get('adapter_levels', '[]')))}")
    for src in json.loads(meta.get("sources", "[]")):
        print(f"source:        {src['role']}: {src['file']} sha256 {src['sha256'] or '-'}")
    if meta.get("standin"):
        print("WARNING:       stand-in RANDOM weights: edits will not look like faces")
    print(f"created by:    {meta.get('created_by', '?')}")
    return 0


def run_download(a) -> int:
    from ..weights.download import download

    paths = download(a.to, base_url=a.base_url, convert=not a.no_convert, clip_from=a.clip_from,
                     progress=not a.quiet)
    print(f"done: {paths.get('bundle', a.to)}")
    return 0


def run_standin(a) -> int:
    from ..weights.standin import make_standin_bundle

    make_standin_bundle(a.output, a.size, a.seed)
    print(f"wrote {a.output}: stand-in RANDOM weights (size {a.size}, seed {a.seed})")
    return 0
