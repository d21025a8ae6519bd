"""Edit Video: ComfyUI's VIDEO (core Load Video) -> every frame's face edited -> VIDEO, streamed from file to file.

The IMAGE-batch route (Get Video Components -> Align Face -> ... -> Paste Back -> Create Video) holds every frame
in float32, in the graph, until the prompt ends: a minute of 1080p is 45 GB. This node never holds the clip: it
reads the video twice with PyAV, as `edit-video` does (clipinverter_core/videofile.py), and returns a VIDEO backed
by the file it wrote in ComfyUI's temp folder, which core Save Video copies without re-encoding.
"""
from __future__ import annotations

import os
import uuid

import comfy.model_management as mm
import comfy.utils
import folder_paths
from comfy_api.v0_0_2 import InputImpl, io

from ..clipinverter_core.align.detect import FACE_ORDERS, MIN_FACE_SCORE, MIN_FACE_SIZE, FaceFilter
from ..clipinverter_core.align.video import plan_clip, scan_frames
from ..clipinverter_core.errors import InputError
from ..clipinverter_core.photo import Paste
from ..clipinverter_core.videofile import check_even, edit_video_file, frame_stream, probe
from . import types
from .align import SMOOTHING_MODES, smoothing_of
from .edit import STRENGTH

NO_FACE = ["passthrough", "error"]
SUBFOLDER = "clipinverter"  # of ComfyUI's temp folder (emptied when ComfyUI starts)


def video_source(video):
    """What PyAV opens for a ComfyUI VIDEO: the file behind it (core Load Video's), else its bytes."""
    get = getattr(video, "get_stream_source", None)
    if get is None:
        raise InputError("Edit Video needs a video read from a file (core Load Video), not frames in memory: "
                         "for those use Align Face -> ... -> Paste Back")
    return get()


def track_video(source, total: int, face_index: int, face_order: str, smoothing: float | str, hold: int = 5,
                if_no_face: str = "passthrough", keep: FaceFilter = FaceFilter()):
    """Pass 1 of a node on a video (`total` frames, 0 if unknown): each frame's planned crops (align/video), and
    the progress bar of both passes, counting frames, at the end of this one. Cancel is checked at every frame."""
    pbar = comfy.utils.ProgressBar(2 * total if total else 0)
    detections, cuts = scan_frames(frame_stream(source), mm.throw_exception_if_processing_interrupted,
                                   lambda k: pbar.update(1), keep)
    plan = plan_clip(detections, cuts, "all" if face_index < 0 else int(face_index), if_no_face, face_order,
                     smoothing, int(hold))
    pbar.update_absolute(len(plan), 2 * len(plan))
    return plan, pbar


class EditVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CLIPInverterEditVideo",
            display_name="Edit Video",
            category="CLIPInverter",
            description="Edits the face through a whole video, streamed: one pass tracks it, one edits a chunk of "
                        "frames at a time and writes H.264 with the audio copied and the frame rate kept. Never "
                        "holds all frames. Connect core Load Video in and Save Video (or Preview) out.",
            inputs=[
                types.Model.Input("model", tooltip="From Load Inverter, or a tuned one (Refine Identity, Load "
                                                   "Tuning): every frame is edited with it."),
                io.Video.Input("video", tooltip="From core Load Video."),
                types.Embedding.Input("embedding", tooltip="Target: Encode Text or Encode Image (one embedding)."),
                io.Float.Input("strength", default=1.0, **STRENGTH, tooltip="Edit strength alpha (1 = the paper)."),
                io.Float.Input("remap_strength", default=1.0, **STRENGTH, tooltip="CLIPRemapper strength beta."),
                io.Int.Input("face_index", default=0, min=-1, max=63,
                             tooltip="Which face of a shot's first frame, in face_order (-1: every face)."),
                io.Combo.Input("face_order", options=list(FACE_ORDERS), default=FACE_ORDERS[0],
                               tooltip="What face_index counts: faces by size, from the left, or from the top."),
                io.Combo.Input("smoothing_mode", options=SMOOTHING_MODES, default="auto",
                               tooltip="auto: the crop's smoothing over time set frame by frame from the clip; "
                                       "sigma: the smoothing value for the whole clip."),
                io.Float.Input("smoothing", default=3.0, min=0.0, max=20.0, step=0.5,
                               tooltip="With smoothing_mode sigma: a Gaussian's sigma in frames (0: per frame)."),
                io.Float.Input("feather", default=0.1, min=0.0, max=0.5, step=0.01,
                               tooltip="Width of the paste's blend, a fraction of the crop."),
                io.Float.Input("color_match", default=1.0, min=0.0, max=1.0, step=0.05,
                               tooltip="0..1: the edited face takes the frame's colours at its border."),
                io.Int.Input("hold", optional=True, default=5, min=0, max=240,
                             tooltip="Frames a lost face keeps its crop (a gap it comes back from is interpolated)."),
                io.Combo.Input("if_no_face", optional=True, options=NO_FACE, default="passthrough",
                               tooltip="Frames without a face (after hold): keep them unedited, or stop."),
                io.Int.Input("frames_per_chunk", optional=True, default=8, min=1, max=256,
                             tooltip="Frames edited at once: the node's memory is one chunk."),
                io.Float.Input("min_face_score", optional=True, default=MIN_FACE_SCORE, min=0.0, max=5.0, step=0.05,
                               tooltip="Detections scoring lower are not faces (see Align Face)."),
                io.Float.Input("min_face_size", optional=True, default=MIN_FACE_SIZE, min=0.0, max=1.0, step=0.05,
                               tooltip="Faces narrower than this fraction of the widest are left out."),
            ],
            outputs=[io.Video.Output(display_name="video", tooltip="The edited video (H.264, the input's audio).")],
        )

    @classmethod
    def execute(cls, model, video, embedding, strength, remap_strength, face_index, face_order, smoothing_mode,
                smoothing, feather, color_match, hold=5, if_no_face="passthrough", frames_per_chunk=8,
                min_face_score=MIN_FACE_SCORE, min_face_size=MIN_FACE_SIZE) -> io.NodeOutput:
        if embedding.shape[0] != 1:
            raise InputError(f"Edit Video edits with one embedding, not {embedding.shape[0]}: pick one with its batch "
                             "index, or edit the IMAGE frames with Invert with CLIPAdapter")
        source = video_source(video)
        info = probe(source)
        check_even(*info[2:])
        plan, pbar = track_video(source, info[0], face_index, face_order, smoothing_of(smoothing_mode, smoothing),
                                 hold, if_no_face, FaceFilter(float(min_face_score), float(min_face_size)))
        inverter = model.on_device(int(frames_per_chunk))
        folder = os.path.join(folder_paths.get_temp_directory(), SUBFOLDER)
        out = os.path.join(folder, f"edit_video_{uuid.uuid4().hex[:12]}.mp4")
        edit_video_file(inverter, source, out, plan, embedding, int(frames_per_chunk), float(strength),
                        float(remap_strength), Paste(float(feather), float(color_match)),
                        on_frame=lambda: pbar.update(1), check=mm.throw_exception_if_processing_interrupted, info=info)
        return io.NodeOutput(InputImpl.VideoFromFile(out))
