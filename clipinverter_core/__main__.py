"""Command line: `python -m clipinverter_core {convert,info,edit,standin,bench} ...`."""
from __future__ import annotations

import argparse
import json
import os
import sys

from .errors import CLIPInverterError

OFFICIAL_FILES = """\
The official weights (see models/README.md):
  pretrained_faces.pt   CLIPInverter faces: https://drive.google.com/file/d/18goTnPtVrz1Tuen3JuDIEwj5z3GvgVqJ
  e4e_ffhq_encode.pt    e4e FFHQ encoder:   https://drive.google.com/file/d/1kxYtrg4YQCudxL5f9xmCzOdJRITH5UXB
  ViT-B-32.pt           OpenAI CLIP:        https://openaipublic.azureedge.net/clip/models/\
40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt
then:
  python -m clipinverter_core convert --clipinverter pretrained_faces.pt --e4e e4e_ffhq_encode.pt \\
      --clip ViT-B-32.pt -o models/clipinverter/clipinverter_faces.safetensors"""


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m clipinverter_core",
                                 description="CLIPInverter: text-driven editing of face photos.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("convert", help="official checkpoints -> one safetensors bundle",
                       epilog=OFFICIAL_FILES, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--clipinverter", required=True, help="pretrained_faces.pt (adapter + generator + remapper)")
    c.add_argument("--e4e", required=True, help="e4e_ffhq_encode.pt (encoder + latent_avg)")
    c.add_argument("--clip", required=True, help="ViT-B-32.pt (OpenAI), or open_clip .safetensors / .bin")
    c.add_argument("-o", "--output", required=True, help="the bundle to write (.safetensors)")

    i = sub.add_parser("info", help="what a bundle holds")
    i.add_argument("bundle")
    i.add_argument("--json", action="store_true", help="print the metadata as JSON")

    e = sub.add_parser("edit", help="edit a face photo with a text")
    e.add_argument("--model", required=True, help="bundle (.safetensors)")
    e.add_argument("--image", required=True, help="input photo")
    e.add_argument("--text", required=True, action="append",
                   help="the target description; repeat for several edits of the same photo")
    e.add_argument("-o", "--output", required=True,
                   help="output PNG (with several --text: OUT_0.png, OUT_1.png, ...)")
    e.add_argument("--strength", type=float, default=1.0, help="edit strength alpha (1 = the paper)")
    e.add_argument("--remap-strength", type=float, default=1.0, help="CLIPRemapper strength beta (1 = the paper)")
    e.add_argument("--no-align", action="store_true", help="the image is already an FFHQ-aligned face crop")
    e.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    e.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"))
    e.add_argument("--save-raw", metavar="RAW", help="also write float32 text_embedding, w, w_hat, image "
                   "(unclamped) to this .safetensors file")

    s = sub.add_parser("standin", help="write a bundle of stand-in RANDOM weights (demos, tests)")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--size", type=int, default=256, help="StyleGAN output size")
    s.add_argument("--seed", type=int, default=0)

    b = sub.add_parser("bench", help="time the fast edit against the reference edit (same weights, same process)")
    b.add_argument("--model", default=None, help="bundle (.safetensors); default: stand-in random weights")
    b.add_argument("--size", type=int, default=1024, help="StyleGAN size of the stand-in weights")
    b.add_argument("--batch", default="1", help="comma-separated batch sizes, e.g. 1,8,32")
    b.add_argument("--precision", default="fp32", help="precisions of the fast path, comma-separated: fp32,bf16,fp16")
    b.add_argument("--device", default="cpu", help="cpu or cuda")
    b.add_argument("--repeats", type=int, default=3, help="timed rounds after one warm-up round")
    b.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return ap


def cmd_convert(a) -> int:
    from .convert import convert

    convert(a.clipinverter, a.e4e, a.clip, a.output)
    print(f"wrote {a.output} ({os.path.getsize(a.output) / 2**20:.0f} MiB)")
    return 0


def cmd_info(a) -> int:
    from .weights import read_metadata

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


def cmd_edit(a) -> int:
    import numpy as np

    from .errors import InputError
    from .images import generator_to_unit, load_image, pil_to_encoder_input, save_png, unit_to_uint8
    from .pipeline import CLIPInverter

    if not a.no_align:
        raise InputError("face alignment is not built yet: pass --no-align with a face crop that is already "
                         "FFHQ-aligned (eyes level, face centred as in FFHQ)")
    img = load_image(a.image)
    model = CLIPInverter.from_bundle(a.model, a.device, a.precision)
    if model.metadata.get("standin"):
        print("WARNING: stand-in RANDOM weights: the output will not look like a face.\n" + OFFICIAL_FILES,
              file=sys.stderr)
    x = pil_to_encoder_input(img)
    t = model.encode_text(a.text)
    result = model.edit(x, t, strength=a.strength, remap_strength=a.remap_strength)
    pixels = unit_to_uint8(generator_to_unit(result.image).permute(0, 2, 3, 1).cpu().numpy())
    outputs = [a.output] if len(pixels) == 1 else \
        [f"{os.path.splitext(a.output)[0]}_{k}.png" for k in range(len(pixels))]
    if a.save_raw:
        from safetensors.torch import save_file

        from .fileio import atomic_output
        raw = {"text_embedding": result.text_embedding, "w": result.w, "w_hat": result.w_hat, "image": result.image}
        with atomic_output(a.save_raw) as tmp:
            save_file({k: v.float().cpu().contiguous() for k, v in raw.items()}, tmp)
    for path, arr in zip(outputs, pixels):
        save_png(path, np.ascontiguousarray(arr))
        print(f"wrote {path}")
    return 0


def cmd_standin(a) -> int:
    from .standin import make_standin_bundle

    make_standin_bundle(a.output, a.size, a.seed)
    print(f"wrote {a.output}: stand-in RANDOM weights (size {a.size}, seed {a.seed})")
    return 0


def cmd_bench(a) -> int:
    from .bench import cmd_bench as bench

    return bench(a)


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    try:
        return {"convert": cmd_convert, "info": cmd_info, "edit": cmd_edit, "standin": cmd_standin,
                "bench": cmd_bench}[a.cmd](a)
    except (CLIPInverterError, FileNotFoundError) as e:
        msg = str(e) if not isinstance(e, FileNotFoundError) or not e.filename else f"no file at {e.filename}"
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no output was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
