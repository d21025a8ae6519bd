"""Video files through PyAV, streamed: what `edit-video`, `track` and the Edit Video node share.

    probe (frame count, rate, size) -> frame_stream (one frame at a time) -> align/video.scan_frames, plan_clip
    -> edit_video_file: decode again, in chunks -> photo.edit_frames -> encode H.264; the audio packets copied

Frames are never all in memory: at most one chunk of frames, crops and edits is alive. The output keeps the
input's frame rate, size and audio stream; it is written under a temporary name beside the target and renamed
when complete, so an interruption (Ctrl-C, ComfyUI's cancel) or an error leaves no half-written file.
"""
from __future__ import annotations

import io
import logging
import os
from typing import Callable

import numpy as np

from .errors import CLIPInverterError, InputError

log = logging.getLogger("clipinverter")

H264_ENCODERS = ("libx264", "h264")  # FFmpeg's encoder names for H.264, in order of preference
FALLBACK_ENCODER = "mpeg4"
H264_CRF = "18"  # x264's visually near-lossless setting
CONTAINER_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}



def av_module():
    try:
        import av
    except ImportError:
        raise CLIPInverterError("video needs PyAV: pip install av (ComfyUI installs it)") from None
    return av


def _open(source):
    if isinstance(source, io.BytesIO):
        source.seek(0)
    return av_module().open(source)


def unit_frame(frame):
    """A decoded PyAV frame as a (3, H, W) float tensor in [0, 1]."""
    import torch

    return torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1).float().div_(255)


def frame_stream(source):
    """(3, H, W) float tensors in [0, 1], one at a time."""
    with _open(source) as container:
        for frame in container.decode(video=0):
            yield unit_frame(frame)


def probe(source, name: str | None = None):
    """(frame count (0 if unknown), frame rate, width, height) of a video; InputError for anything else."""
    av = av_module()
    name = name or (source if isinstance(source, str) else "the video")
    try:
        with _open(source) as c:
            if not c.streams.video:
                raise InputError(f"{name}: no video stream")
            s = c.streams.video[0]
            if c.format.name.endswith("_pipe") or (c.format.name == "image2" and "%" not in name):  # one picture
                raise InputError(f"{name} is a still image, not a video: edit it with `edit --input {name}`")
            return s.frames, s.average_rate or s.guessed_rate, s.codec_context.width, s.codec_context.height
    except av.error.FFmpegError as e:
        raise InputError(f"{name}: not a readable video ({e})") from None


def check_even(width: int, height: int) -> None:
    if width % 2 or height % 2:
        raise InputError(f"the video is {width}x{height}; H.264 (yuv420p) needs an even width and height")


def container_format(path: str) -> str:
    fmt = CONTAINER_FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise InputError(f"the output must end in {', '.join(CONTAINER_FORMATS)}, not {path!r}")
    return fmt


def video_encoder() -> str:
    """libx264 where this PyAV build has it (PyPI's wheels do), else MPEG-4 Part 2 with a warning."""
    av = av_module()
    for name in H264_ENCODERS:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - PyAV raises its own errors for unknown codecs
            continue
    log.warning("this PyAV build has no H.264 encoder (%s); writing MPEG-4 Part 2 (%s) instead. A PyAV wheel "
                "from PyPI has libx264.", ", ".join(H264_ENCODERS), FALLBACK_ENCODER)
    return FALLBACK_ENCODER


def edit_video_file(model, source, output: str, plan: list, t, batch: int = 8, strength: float = 1.0,
                    remap_strength: float = 1.0, paste=None, tracks: dict | None = None,
                    on_frame: Callable[[], None] | None = None, check: Callable[[], None] | None = None,
                    info: tuple | None = None) -> int:
    """The clip at `source` edited as `plan` says (photo.edit_frames: `t` (1, 512), `batch` frames at a time) and
    written to `output` (.mp4, .mov, .mkv): H.264 (yuv420p) at the input's rate, its audio packets copied.
    on_frame() after each frame written; check() before each chunk (raise to stop: nothing is left). info: the
    source's probe, when the caller has it. Returns the frames written."""
    from .fileio import atomic_output
    from .photo import edit_frames

    fmt = container_format(output)
    _, rate, width, height = info or probe(source)
    check_even(width, height)
    av, encoder = av_module(), video_encoder()
    with atomic_output(output) as tmp, _open(source) as src, av.open(tmp, "w", format=fmt) as dst:
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
        for pixels in edit_frames(model, frames, plan, t, batch, strength, remap_strength, paste, tracks, check):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame.pts = done
            frame.time_base = 1 / rate
            for packet in vout.encode(frame):
                dst.mux(packet)
            done += 1
            if on_frame is not None:
                on_frame()
        for _ in frames:  # the audio after the last planned frame
            pass
        for packet in vout.encode():
            dst.mux(packet)
    return done
