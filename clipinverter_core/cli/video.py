"""`edit-video`: one face edited through a whole video with PyAV, streamed (clipinverter_core/videofile.py).

    pass 1: decode each frame -> detect faces + a cut signature (kept: a few hundred bytes a frame)
            -> track and smooth (align/track.py) -> each frame's crops (cli/clips.py; --track-out: as JSON)
    (--refine-identity: decode again -> each track's crops in 8 bits -> STIT's tuning, a generator per face)
    pass 2: decode again, in chunks of --batch frames: crops -> edit -> paste back -> encode H.264;
            the audio packets are copied as they are (videofile.edit_video_file)
"""
from __future__ import annotations

from ..videofile import frame_stream, probe
from .clips import add_track_options, progress_bar, track_clip
from .common import add_device, add_input, add_quiet, warn_about_model
from .identity import add_tuning_args


def add_parser(sub) -> None:
    """Adds the `edit-video` subcommand to the CLI's subparsers."""
    v = sub.add_parser("edit-video", help="edit a face through a whole video (streamed with PyAV)")
    v.add_argument("--model", required=True, help="bundle (.safetensors)")
    add_input(v, "the video (anything FFmpeg reads)")
    v.add_argument("-o", "--output", required=True, help="output video: .mp4, .mov or .mkv (H.264)")
    v.add_argument("--text", required=True, help="the target description")
    v.add_argument("--strength", type=float, default=1.0, help="edit strength alpha (1 = the paper)")
    v.add_argument("--remap-strength", type=float, default=1.0, help="CLIPRemapper strength beta")
    add_track_options(v)
    v.add_argument("--if-no-face", choices=("error", "passthrough"), default="passthrough",
                   help="frames without a face (after --hold): stop, or keep them unedited (default)")
    v.add_argument("--track-out", help="also write the track the edit used as JSON (the format: docs/video.md)")
    v.add_argument("--feather", type=float, default=0.1, help="width of the paste's blend, a fraction of the crop")
    v.add_argument("--color-match", type=float, default=1.0, help="0..1: the face takes the frame's colours")
    v.add_argument("--batch-size", "--batch", type=int, default=8, help="frames edited at once (memory: one chunk)")
    add_device(v)
    add_quiet(v)
    add_tuning_args(v, "clip")
    v.set_defaults(run=run)


def run(a) -> int:
    from ..photo import Paste
    from ..pipeline import CLIPInverter
    from ..videofile import check_even, container_format, edit_video_file, video_encoder
    from .identity import tuned_tracks

    container_format(a.output)
    info = probe(a.input)
    check_even(*info[2:])  # before the tracking pass

    plan = track_clip(a, info, a.if_no_face, a.track_out)

    model = CLIPInverter.from_bundle(a.model, a.device, a.precision)
    warn_about_model(model, a, "the faces will not look like faces")
    text = model.encode_text([a.text])
    tracks = tuned_tracks(model, a, plan, frame_stream(a.input))
    with progress_bar(len(plan), "edit", a.quiet) as bar:
        done = edit_video_file(model, a.input, a.output, plan, text, a.batch_size, a.strength, a.remap_strength,
                               Paste(a.feather, a.color_match), tracks, on_frame=lambda: bar.update(1), info=info)
    print(f"wrote {a.output} ({done} frames, {video_encoder()})")
    return 0
