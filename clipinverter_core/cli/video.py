"""`edit-video`: one face edited through a whole video with PyAV, streamed (the edit: photo.edit_frames).

    pass 1: decode each frame -> detect faces + a cut signature (kept: a few hundred bytes a frame)
            -> track and smooth (align/track.py) -> each frame's crops (cli/clips.py; --track-out: as JSON)
    (--refine-identity: decode again -> each track's crops in 8 bits -> STIT's tuning, a generator per face)
    pass 2: decode again, in chunks of --batch frames: crops -> edit -> paste back -> encode H.264;
            the audio packets are copied as they are

Frames are never all in memory: at most one chunk of frames, crops and edits is alive. The output keeps the
input's frame rate, size and audio stream; it is written under a temporary name beside the target and renamed
when complete, so Ctrl-C (or an error) leaves no half-written file.
"""
from __future__ import annotations

import os
import sys

from ..errors import InputError
from .clips import add_track_options, av_module, frame_stream, probe, progress_bar, track_clip, unit_frame
from .common import add_device, add_input, add_quiet, warn_about_model
from .identity import add_tuning_args

H264_ENCODERS = ("libx264", "h264")  # FFmpeg's encoder names for H.264, in order of preference
FALLBACK_ENCODER = "mpeg4"
CONTAINER_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
H264_CRF = "18"  # x264's visually near-lossless setting


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


def _video_encoder(av) -> str:
    for name in H264_ENCODERS:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - PyAV raises its own errors for unknown codecs
            continue
    print(f"WARNING: this PyAV build has no H.264 encoder ({', '.join(H264_ENCODERS)}); writing MPEG-4 Part 2 "
          f"({FALLBACK_ENCODER}) instead. A PyAV wheel from PyPI has libx264.", file=sys.stderr)
    return FALLBACK_ENCODER


def run(a) -> int:
    import numpy as np

    from ..fileio import atomic_output
    from ..photo import Paste, edit_frames
    from ..pipeline import CLIPInverter
    from .identity import tuned_tracks

    fmt = CONTAINER_FORMATS.get(os.path.splitext(a.output)[1].lower())
    if fmt is None:
        raise InputError(f"the output must end in {', '.join(CONTAINER_FORMATS)}, not {a.output!r}")
    total, rate, width, height = probe(a.input)
    if width % 2 or height % 2:
        raise InputError(f"the video is {width}x{height}; H.264 (yuv420p) needs an even width and height")

    plan = track_clip(a, total, rate, width, height, a.if_no_face, a.track_out)

    model = CLIPInverter.from_bundle(a.model, a.device, a.precision)
    warn_about_model(model, a, "the faces will not look like faces")
    text = model.encode_text([a.text])
    tracks = tuned_tracks(model, a, plan, frame_stream(a.input))

    av = av_module()
    encoder = _video_encoder(av)
    with atomic_output(a.output) as tmp, av.open(a.input) as src, av.open(tmp, "w", format=fmt) as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream(encoder, rate=rate)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        if encoder == "libx264":
            vout.options = {"crf": H264_CRF}
        ain = src.streams.audio[0] if src.streams.audio else None
        aout = dst.add_stream_from_template(ain) if ain is not None else None

        def video_frames():
            """The input's frames, in [0, 1]; its audio packets are copied to the output on the way."""
            for packet in src.demux(*(s for s in (vin, ain) if s is not None)):
                if packet.stream is ain:
                    if packet.dts is not None:
                        packet.stream = aout
                        dst.mux(packet)
                    continue
                for frame in packet.decode():
                    yield unit_frame(frame)

        frames, done = video_frames(), 0
        with progress_bar(len(plan), "edit", a.quiet) as bar:
            for pixels in edit_frames(model, frames, plan, text, a.batch_size, a.strength, a.remap_strength,
                                      Paste(a.feather, a.color_match), tracks):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
                frame.pts = done
                frame.time_base = 1 / rate
                for packet in vout.encode(frame):
                    dst.mux(packet)
                done += 1
                bar.update(1)
        for _ in frames:  # the audio after the last planned frame
            pass
        for packet in vout.encode():
            dst.mux(packet)
    print(f"wrote {a.output} ({done} frames, {encoder})")
    return 0
