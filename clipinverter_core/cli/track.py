"""`track`: a clip's face track, without editing, as JSON (the format: align/trackfile.py, docs/video.md)."""
from __future__ import annotations

from ..videofile import probe
from .clips import add_track_options, track_clip
from .common import add_input, add_quiet


def add_parser(sub) -> None:
    t = sub.add_parser("track", help="follow a face through a video and write its crop per frame as JSON")
    add_input(t, "the video (anything FFmpeg reads)")
    t.add_argument("-o", "--output", required=True, help="the track (.json)")
    add_track_options(t)
    t.add_argument("--crop-size", type=int, default=1024, help="the side of the crop the matrices are for")
    add_quiet(t)
    t.set_defaults(run=run)


def run(a) -> int:
    plan = track_clip(a, probe(a.input), "passthrough", a.output, a.crop_size)
    found = sum(any(p.quad is not None for p in planned) for planned in plan)
    print(f"wrote {a.output} ({len(plan)} frames, a face in {found})")
    return 0
