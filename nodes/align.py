"""Align Face (photo -> FFHQ-aligned crops + CLIPINVERTER_ALIGNMENT) and Paste Back (edits -> the photo)."""
from __future__ import annotations

import dataclasses

import comfy.model_management as mm
import comfy.utils
import torch
from comfy_api.v0_0_2 import io

from ..clipinverter_core.align import Alignment, FaceNotFoundError, align, paste_edits
from ..clipinverter_core.align.detect import FACE_ORDERS, MIN_FACE_SCORE, MIN_FACE_SIZE, FaceFilter
from ..clipinverter_core.align.track import looks_like_video
from ..clipinverter_core.align.video import align_clip, scan_frames
from ..clipinverter_core.errors import InputError
from . import types
from .images import as_output, to_comfy, to_core

NO_FACE = ["error", "passthrough"]
TRACKING = ["auto", "on", "off"]
SMOOTHING_MODES = ["auto", "sigma"]  # align/smooth.py: auto adapts per frame; sigma fixes it to `smoothing`


def smoothing_of(mode: str, sigma: float) -> float | str:
    """The core's `smoothing` from a node's smoothing_mode and smoothing inputs."""
    return "auto" if mode == "auto" else float(sigma)


class AlignFace(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CLIPInverterAlignFace",
            display_name="Align Face",
            category="CLIPInverter",
            description="Finds the face in each photo (dlib) and cuts the FFHQ-aligned square crop the inverter "
                        "expects (eyes level, face centred). On video frames it follows one face through the clip "
                        "and smooths its crop over time. Keep the alignment output for Paste Back.",
            inputs=[
                io.Image.Input("image", tooltip="Any photo(s) with a face, or the frames of a video; a batch of "
                                                "photos is aligned photo by photo."),
                io.Int.Input("face_index", default=0, min=-1, max=63,
                             tooltip="Which face, counted in face_order: 0 = the first; -1 = every face (on video: "
                                     "each face of the first frame, each followed on its own)."),
                io.Int.Input("size", default=256, min=64, max=2048, step=64,
                             tooltip="Side of the crop: 256 feeds the encoder; 1024 to look at."),
                io.Combo.Input("if_no_face", options=NO_FACE, default="error",
                               tooltip="A photo (or a video frame, after `hold` frames) without a face: stop with "
                                       "an error, or pass the whole photo through, resized to the crop size."),
                io.Combo.Input("face_order", optional=True, options=list(FACE_ORDERS), default=FACE_ORDERS[0],
                               tooltip="What face_index counts: faces by size, from the left, or from the top."),
                io.Combo.Input("tracking", optional=True, options=TRACKING, default="auto",
                               tooltip="Follow one face through the batch (on), align each photo alone (off), or "
                                       "auto: follow when the batch is a video, i.e. most neighbouring frames show "
                                       "the same shot (their colours barely change)."),
                io.Float.Input("smoothing", optional=True, default=3.0, min=0.0, max=20.0, step=0.5,
                               tooltip="Tracking, with smoothing_mode sigma: how much the crop is smoothed over "
                                       "time, as a Gaussian's sigma in frames (0 = per-frame detections)."),
                io.Int.Input("hold", optional=True, default=5, min=0, max=240,
                             tooltip="Tracking: frames a lost face keeps its last crop before if_no_face applies."),
                io.Float.Input("min_face_score", optional=True, default=MIN_FACE_SCORE, min=0.0, max=5.0, step=0.05,
                               tooltip="Detections the face detector scores lower are not faces (measured: real "
                                       "faces 1.06 to 1.67 in photos, down to 0.32 in the frames of a turning face; "
                                       "a mission patch on a suit 0.07 to 0.12). 0 keeps every one."),
                io.Float.Input("min_face_size", optional=True, default=MIN_FACE_SIZE, min=0.0, max=1.0, step=0.05,
                               tooltip="Faces narrower than this fraction of the widest face in the photo are left "
                                       "out. 0 keeps them all."),
                io.Combo.Input("smoothing_mode", optional=True, options=SMOOTHING_MODES, default="auto",
                               tooltip="Tracking: auto sets the smoothing frame by frame from the clip itself "
                                       "(strong while the face is still, light where it turns: no lag); sigma "
                                       "uses the smoothing value above for the whole clip."),
            ],
            outputs=[
                io.Image.Output(display_name="aligned",
                                tooltip="The aligned crops [N, size, size, 3] in [0, 1], one per face found."),
                types.Alignment.Output(display_name="alignment",
                                       tooltip="Where each crop sits in its photo: connect to Paste Back."),
            ],
        )

    @classmethod
    def execute(cls, image, face_index, size, if_no_face, face_order=FACE_ORDERS[0], tracking="auto",
                smoothing=3.0, hold=5, min_face_score=MIN_FACE_SCORE, min_face_size=MIN_FACE_SIZE,
                smoothing_mode="auto") -> io.NodeOutput:
        which = "all" if face_index < 0 else int(face_index)
        keep = FaceFilter(float(min_face_score), float(min_face_size))
        photos = to_core(image)
        n = photos.shape[0]
        pbar = comfy.utils.ProgressBar(2 * n if tracking != "off" and n > 1 else n)
        frames = (photos[b].float() for b in range(n))  # one frame in float32 at a time
        try:
            if tracking != "off" and n > 1:
                detections, cuts = scan_frames(frames, mm.throw_exception_if_processing_interrupted,
                                               lambda k: pbar.update(1), keep)
                if tracking == "on" or looks_like_video(cuts):
                    crops, alignment = align_clip(photos, int(size), which, if_no_face, face_order,
                                                  smoothing_of(smoothing_mode, smoothing),
                                                  int(hold), detections, cuts,
                                                  mm.throw_exception_if_processing_interrupted,
                                                  lambda k: pbar.update(1))
                    return io.NodeOutput(to_comfy(crops), alignment)
                return cls._each(photos, which, int(size), if_no_face, face_order, pbar, detections)
            return cls._each(photos, which, int(size), if_no_face, face_order, pbar, keep=keep)
        except FaceNotFoundError as e:
            raise FaceNotFoundError(f"Align Face: {e}") from None

    @staticmethod
    def _each(photos, which, size, if_no_face, face_order, pbar, detections=None, keep=FaceFilter()
              ) -> io.NodeOutput:
        """Each photo aligned on its own (detections reused when the tracking check already ran them)."""
        crops, faces = [], []
        for b in range(photos.shape[0]):
            mm.throw_exception_if_processing_interrupted()
            try:
                found = None if detections is None else [detections[b]]
                crop, aligned = align(photos[b:b + 1].float(), size, which, if_no_face, found, face_order, keep)
            except FaceNotFoundError:
                raise FaceNotFoundError(f"no face found in photo {b} of the batch (a frontal face of "
                                        "about 80 px or more is needed); set if_no_face to passthrough to use "
                                        "the whole photo instead") from None
            except InputError as e:
                raise InputError(f"Align Face: photo {b} of the batch: {e}") from None
            crops.append(crop)
            faces += [dataclasses.replace(f, batch_index=b) for f in aligned.faces]
            pbar.update(1)
        return io.NodeOutput(to_comfy(torch.cat(crops)), Alignment(faces, photos.shape[0]))


class PasteBack(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CLIPInverterPasteBack",
            display_name="Paste Back",
            category="CLIPInverter",
            description="Warps edited faces back into the photos they were aligned from, colour-matched to the "
                        "photo and blended at the crop's edge; pixels outside the face crops stay the original's. One face edited N ways gives N "
                        "photos; N faces edited once each give the photos with every face replaced.",
            inputs=[
                io.Image.Input("original", tooltip="The photo(s) given to Align Face."),
                io.Image.Input("edited", tooltip="The edited faces, any square size (e.g. StyleGAN Decode's "
                                                 "1024x1024), in the order of the aligned crops."),
                types.Alignment.Input("alignment", tooltip="From the Align Face that cut the crops."),
                io.Float.Input("feather", default=0.1, min=0.0, max=0.5, step=0.01,
                               tooltip="Width of the blend at the mask's edge, as a fraction of the crop's side; "
                                       "0 = a hard edge."),
                io.Float.Input("color_match", optional=True, default=1.0, min=0.0, max=1.0, step=0.05,
                               tooltip="How far each edited face takes the photo's colours where the two meet "
                                       "(the mask's border band): 0 = as edited, 1 = matched. Hides colour "
                                       "casts of the generator; the edit inside the face is kept."),
                io.Float.Input("grow", optional=True, default=0.0, min=-0.4, max=0.1, step=0.01,
                               tooltip="Moves the mask's edge, as a fraction of the crop's side: negative pastes "
                                       "less of the crop (the face without its square's margin); positive lifts "
                                       "the crop's own edge into view."),
            ],
            outputs=[io.Image.Output(display_name="image",
                                     tooltip="The photo(s) with the edits pasted in, the original's size."),
                     io.Mask.Output(display_name="mask",
                                    tooltip="The blend mask of each output photo [B, H, W] in [0, 1] (the photo's "
                                            "size): where the edit was pasted, for inpainting or upscaling it.")],
        )

    @classmethod
    def execute(cls, original, edited, alignment, feather, color_match=1.0, grow=0.0) -> io.NodeOutput:
        n_edits, n_faces = edited.shape[0], len(alignment)
        pbar = comfy.utils.ProgressBar(max(n_faces if n_edits == n_faces else n_edits, 1))  # a step per paste

        def step(k, total):
            pbar.update(1)
            if k + 1 < total:  # the cancel check between edits
                mm.throw_exception_if_processing_interrupted()

        mm.throw_exception_if_processing_interrupted()
        try:
            out, masks = paste_edits(to_core(original).float(), to_core(edited).float(), alignment, feather, step,
                                     color_match=float(color_match), grow=float(grow))
        except InputError as e:
            raise InputError(f"Paste Back: {e}") from None
        return io.NodeOutput(to_comfy(out), as_output(masks))
