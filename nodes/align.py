"""Align Face (photo -> FFHQ-aligned crops + CLIPINVERTER_ALIGNMENT) and Paste Back (edits -> the photo)."""
from __future__ import annotations

import dataclasses

import comfy.model_management as mm
import comfy.utils
import torch
from comfy_api.latest import io

from ..clipinverter_core.align import Alignment, FaceNotFoundError, align, paste_edits
from ..clipinverter_core.errors import InputError
from . import types

NO_FACE = ["error", "passthrough"]


class AlignFace(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CLIPInverterAlignFace",
            display_name="Align Face",
            category="CLIPInverter",
            description="Finds the face in each photo (dlib) and cuts the FFHQ-aligned square crop the inverter "
                        "expects (eyes level, face centred). Keep the alignment output for Paste Back.",
            inputs=[
                io.Image.Input("image", tooltip="Any photo(s) with a face; a batch is aligned photo by photo."),
                io.Int.Input("face_index", default=0, min=-1, max=63,
                             tooltip="Which face of each photo, by size: 0 = the largest, 1 = the next; -1 = every "
                                     "face of every photo."),
                io.Int.Input("size", default=256, min=64, max=2048, step=64,
                             tooltip="Side of the crop: 256 feeds the encoder; 1024 to look at."),
                io.Combo.Input("if_no_face", options=NO_FACE, default="error",
                               tooltip="A photo without a face: stop with an error, or pass the whole photo "
                                       "through, resized to the crop size."),
            ],
            outputs=[
                io.Image.Output(display_name="aligned",
                                tooltip="The aligned crops [N, size, size, 3] in [0, 1], one per face found."),
                types.Alignment.Output(display_name="alignment",
                                       tooltip="Where each crop sits in its photo: connect to Paste Back."),
            ],
        )

    @classmethod
    def execute(cls, image, face_index, size, if_no_face) -> io.NodeOutput:
        which = "all" if face_index < 0 else int(face_index)
        photos = image.movedim(-1, 1)[:, :3].float()
        pbar = comfy.utils.ProgressBar(photos.shape[0])
        crops, faces = [], []
        for b in range(photos.shape[0]):
            mm.throw_exception_if_processing_interrupted()
            try:
                crop, found = align(photos[b:b + 1], int(size), which, if_no_face)
            except FaceNotFoundError:
                raise FaceNotFoundError(f"Align Face: no face found in photo {b} of the batch (a frontal face of "
                                        "about 80 px or more is needed); set if_no_face to passthrough to use "
                                        "the whole photo instead") from None
            except InputError as e:
                raise InputError(f"Align Face: photo {b} of the batch: {e}") from None
            crops.append(crop)
            faces += [dataclasses.replace(f, batch_index=b) for f in found.faces]
            pbar.update(1)
        aligned = torch.cat(crops).movedim(1, -1).to(mm.intermediate_device(), torch.float32)
        return io.NodeOutput(aligned, Alignment(faces, photos.shape[0]))


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
                io.Float.Input("color_match", default=1.0, min=0.0, max=1.0, step=0.05,
                               tooltip="How far each edited face takes the photo's colours where the two meet "
                                       "(the mask's border band): 0 = as edited, 1 = matched. Hides colour "
                                       "casts of the generator; the edit inside the face is kept."),
                io.Float.Input("grow", default=0.0, min=-0.4, max=0.1, step=0.01,
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
        pbar = comfy.utils.ProgressBar(1 if n_edits == n_faces else n_edits)

        def step(k, total):
            pbar.update(1)
            if k + 1 < total:  # the cancel check between edits
                mm.throw_exception_if_processing_interrupted()

        mm.throw_exception_if_processing_interrupted()
        photos = original.movedim(-1, 1)[:, :3].float()
        try:
            out, masks = paste_edits(photos, edited.movedim(-1, 1)[:, :3].float(), alignment, feather, step,
                                     color_match=float(color_match), grow=float(grow))
        except InputError as e:
            raise InputError(f"Paste Back: {e}") from None
        device = mm.intermediate_device()
        return io.NodeOutput(out.movedim(1, -1).to(device, torch.float32), masks.to(device, torch.float32))
