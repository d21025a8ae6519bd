"""Command line: `python -m clipinverter_core {convert,info,download,standin,edit,align,edit-video,track,evaluate,
train,export,bench} ...`. Dispatch only: each command group lives in cli/ and registers its commands; here they are
parsed and run, and a user's mistake becomes one line and exit 2.
"""
from __future__ import annotations

import argparse
import sys

from . import __version__
from .cli import bench, bundles, evaluate, photos, track, train, video
from .cli.checks import check_arguments
from .cli.common import Parser
from .errors import CLIPInverterError

COMMAND_GROUPS = (bundles, photos, video, track, evaluate, train, bench)


def _parser() -> argparse.ArgumentParser:
    ap = Parser(prog="python -m clipinverter_core", description="CLIPInverter: text-driven editing of face photos.")
    ap.add_argument("--version", action="version", version=f"clipinverter_core {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=Parser)
    for group in COMMAND_GROUPS:
        group.add_parser(sub)
    return ap


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a user can cause: the project's errors, files (OSError: missing, a folder, no permission, a full
    disk), pictures PIL refuses (its DecompressionBombError is no OSError), safetensors files it cannot parse."""
    from PIL import Image
    from safetensors import SafetensorError

    return CLIPInverterError, OSError, Image.DecompressionBombError, SafetensorError


def _one_line(e: BaseException) -> str:
    if isinstance(e, FileNotFoundError) and e.filename:
        return f"no file at {e.filename}"
    return " ".join(str(e).split()) or type(e).__name__


def _interrupted(written: list[str]) -> str:
    if not written:
        return "interrupted; no output was written"
    return f"interrupted after writing {', '.join(written)}; nothing else was written"


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    a.written = []  # each output once it is complete, for the message after an interrupt
    try:
        check_arguments(a)  # mistakes before anything loads
        return a.run(a)
    except _user_errors() as e:  # evaluated only when an exception arrives: PIL and safetensors load lazily
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(_interrupted(a.written), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
