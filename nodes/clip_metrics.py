"""Clip Metrics: an edited VIDEO against its source, the video variant of Edit Metrics. STIT's temporal identity
metrics (TL-ID, TG-ID) and the track's wobble, computed by clipinverter_core.metrics.clips as `evaluate --edited`
computes them; both videos are streamed, only the faces' features kept."""
from __future__ import annotations

import os
import tempfile

import comfy.model_management as mm
import comfy.model_patcher
import numpy as np
import torch
from comfy_api.v0_0_2 import io

from ..clipinverter_core.align.detect import FACE_ORDERS
from ..clipinverter_core.lossnets import LOSS_FILES, load_arcface
from ..clipinverter_core.metrics.clips import check_edit_of, measure_clip, temporal_plot
from .align import SMOOTHING_MODES, smoothing_of
from .metrics import NO_FILE, _full_path, arcface_choice, weight_files
from .paths import FOLDER
from .video import track_video, video_source


def _plot_image(measured) -> torch.Tensor:
    """temporal_plot as a ComfyUI IMAGE [1, H, W, 3]."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "temporal.png")
        temporal_plot(path, measured)
        with Image.open(path) as im:
            return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255)[None]


class ClipMetrics(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        files = weight_files()
        return io.Schema(
            node_id="CLIPInverterClipMetrics",
            display_name="Clip Metrics",
            category="CLIPInverter",
            description="Scores an edited video against its source: does the person stay the same from frame to "
                        "frame (TL-ID, TG-ID: 1.0 = as steady as the source), and how much does the crop wobble.",
            inputs=[
                io.Video.Input("source", tooltip="The video before the edit (core Load Video)."),
                io.Video.Input("edited", tooltip="The edited video (Edit Video)."),
                io.Combo.Input("arcface", options=[NO_FILE] + files,
                               default=next((f for f in files if f == LOSS_FILES["arcface"]), NO_FILE),
                               tooltip=f"{LOSS_FILES['arcface']} in models/{FOLDER}: TL-ID and TG-ID need it; "
                                       "without it only the wobble is measured."),
                io.Int.Input("face_index", default=0, min=-1, max=63,
                             tooltip="Which face, as Edit Video chose it (-1: every face)."),
                io.Combo.Input("face_order", options=list(FACE_ORDERS), default=FACE_ORDERS[0],
                               tooltip="What face_index counts, as in Edit Video."),
                io.Combo.Input("smoothing_mode", options=SMOOTHING_MODES, default="auto",
                               tooltip="The track's smoothing, as Edit Video used it."),
                io.Float.Input("smoothing", default=3.0, min=0.0, max=20.0, step=0.5,
                               tooltip="With smoothing_mode sigma: a Gaussian's sigma in frames."),
            ],
            outputs=[
                io.String.Output(display_name="table", tooltip="Per tracked face: frames, TL-ID, TG-ID, wobble."),
                io.Float.Output(display_name="tl_id", tooltip="TL-ID of the first face (adjacent frames)."),
                io.Float.Output(display_name="tg_id", tooltip="TG-ID of the first face (every pair of frames)."),
                io.Float.Output(display_name="wobble", tooltip="The track's wobble, a fraction of the crop's width."),
                io.Image.Output(display_name="plot", tooltip="Identity to the previous frame and wobble over time."),
            ],
        )

    @classmethod
    def validate_inputs(cls, arcface) -> bool | str:
        return arcface_choice("Clip Metrics", arcface)

    @classmethod
    def execute(cls, source, edited, arcface, face_index, face_order, smoothing_mode, smoothing) -> io.NodeOutput:
        src, out = video_source(source), video_source(edited)
        total = check_edit_of(src, out)[0]
        plan, pbar = track_video(src, total, face_index, face_order, smoothing_of(smoothing_mode, smoothing))
        check = mm.throw_exception_if_processing_interrupted
        net = None
        if arcface != NO_FILE:
            patcher = comfy.model_patcher.ModelPatcher(load_arcface(_full_path(arcface), mm.unet_offload_device()),
                                                       load_device=mm.get_torch_device(),
                                                       offload_device=mm.unet_offload_device())
            mm.load_models_gpu([patcher])
            net = patcher.model
        measured = measure_clip(src, out, net, plan, progress=lambda k: (check(), pbar.update(1)))
        lines = [f"{'face':>4} {'frames':>6} {'TL-ID':>7} {'TG-ID':>7} {'wobble':>8}"]
        for k, m in measured.items():
            s = m.summary
            lines.append(f"{k:>4} {s['frames']:>6} {s.get('tl_id', float('nan')):>7.4f} "
                         f"{s.get('tg_id', float('nan')):>7.4f} {100 * s['wobble']:>7.3f}%")
        if net is None:
            lines.append("TL-ID, TG-ID: skipped (no ArcFace file chosen)")
        first = next(iter(measured.values()), None)
        summary = first.summary if first is not None else {}
        return io.NodeOutput("\n".join(lines), summary.get("tl_id", float("nan")), summary.get("tg_id", float("nan")),
                             summary.get("wobble", float("nan")), _plot_image(measured))
