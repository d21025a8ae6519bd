"""Refine Identity (pivotal tuning), Save Tuning and Load Tuning: a CLIPINVERTER_MODEL whose generator is tuned
to a person (clipinverter_core/tuning), carried as weight patches on a clone of the model's ModelPatcher."""
from __future__ import annotations

import logging
import os

import comfy.model_management as mm
import comfy.utils
import folder_paths
from comfy_api.v0_0_2 import io

from ..clipinverter_core.errors import InputError
from ..clipinverter_core.images import tensor_to_encoder_input
from ..clipinverter_core.lossnets import find_loss_file, load_lpips
from ..clipinverter_core.pipeline import Latent
from ..clipinverter_core.tuning import MODES, combine, defaults, load_tuning, refine_identity, save_tuning
from . import paths, types
from .images import to_core, to_encoder_input

log = logging.getLogger("clipinverter")
TUNING_ITEMS = 8   # batch items of working memory the tuning's backward pass is given room for (an estimate)


def _need_lpips() -> None:
    """The tuning's LPIPS takes its linear layers from the `lpips` package (requirements.txt)."""
    try:
        import lpips
    except ImportError as e:
        raise InputError("Refine Identity needs the lpips package (LPIPS' linear layers ship in it): install it "
                         "into ComfyUI's Python (pip install lpips) and restart ComfyUI") from e
    del lpips


class RefineIdentity(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CLIPInverterRefineIdentity",
            display_name="Refine Identity (PTI)",
            category="CLIPInverter",
            description="Pivotal tuning: tunes the generator's weights so that the faces' own inversions reproduce "
                        "them, so that edits keep the person (the e4e inversion alone loses identity). Every face "
                        "of the batch tunes one generator: give photos of one person (or a clip's aligned frames "
                        "in clip mode); a batch that mixes people tunes a blend of them. Minutes on a CPU.",
            inputs=[
                types.Model.Input("model", tooltip="From Load Inverter."),
                io.Image.Input("faces", tooltip="Aligned faces of one person (Align Face), any size: they are "
                                                "resized to the encoder's 256 and to the generator's side. Align "
                                                "at the generator's side (1024 for the faces model) for a sharp "
                                                "target."),
                io.Combo.Input("mode", options=list(MODES), default="photo",
                               tooltip="photo: PTI (lr 3e-4, up to 350 steps, stops once LPIPS <= the stop); "
                                       "clip: STIT (one generator for all frames, lr 3e-5, 50 steps, the "
                                       "locality regulariser on)."),
                io.Int.Input("steps", default=0, min=0, max=5000,
                             tooltip="Tuning steps; 0: the mode's default (photo 350, clip 50)."),
                io.Float.Input("lpips_stop", default=0.06, min=0.0, max=1.0, step=0.01,
                               tooltip="photo mode with one face: stop once the LPIPS to the photo is at most "
                                       "this (PTI's 0.06); 0 runs every step."),
                io.Float.Input("lr", default=0.0, min=0.0, max=0.01, step=0.00001,
                               tooltip="Adam's learning rate; 0: the mode's default (photo 3e-4, clip 3e-5)."),
                io.Combo.Input("regulariser", options=["default", "on", "off"], default="default",
                               tooltip="PTI's locality regulariser (keeps codes away from the pivot unchanged): "
                                       "default is off for photo, on for clip."),
            ],
            outputs=[
                types.Model.Output(display_name="model", tooltip="The model with its generator tuned: use it in "
                                   "Invert with CLIPAdapter, Remap Latent and StyleGAN Decode as before."),
                types.Latent.Output(display_name="pivot", tooltip="The codes it was tuned at (the faces' "
                                    "inversions): StyleGAN Decode of them shows the tuned reconstruction."),
            ],
        )

    @classmethod
    def execute(cls, model, faces, mode, steps, lpips_stop, lr, regulariser) -> io.NodeOutput:
        d = defaults(mode)
        changes = {"steps": steps or d.steps, "lr": lr or d.lr}
        if mode == "photo":
            changes["lpips_stop"] = lpips_stop or None
        if regulariser != "default":
            changes["regulariser"] = regulariser == "on"
        settings = d.replace(**changes)
        alexnet = find_loss_file("alexnet", folders=paths.model_folders(), can_pass_path=False)  # before the load
        _need_lpips()
        inv = model.on_device(TUNING_ITEMS)
        lpips = load_lpips(alexnet, inv.device)
        x = to_encoder_input(faces)
        targets = tensor_to_encoder_input(to_core(faces).float(), inv.size)
        pbar = comfy.utils.ProgressBar(settings.steps)
        tuning = refine_identity(inv, x, targets, settings, lpips=lpips,
                                 progress=lambda step, total, visit: pbar.update_absolute(step, total),
                                 check=mm.throw_exception_if_processing_interrupted)
        log.info("clipinverter: %s", tuning.summary())
        return io.NodeOutput(model.with_tuning(tuning), Latent(tuning.pivots))


class SaveTuning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CLIPInverterSaveTuning",
            display_name="Save Tuning",
            category="CLIPInverter",
            description="Writes the tuned generator's change (a small .safetensors, bound to the bundle it was "
                        f"tuned on) to the output folder's {paths.TUNINGS}/; Load Tuning lists it from there.",
            inputs=[
                types.Model.Input("model", tooltip="A model from Refine Identity or Load Tuning."),
                io.String.Input("filename_prefix", default="tuned", tooltip="The file's name before _00001."),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, model, filename_prefix) -> io.NodeOutput:
        if not model.tunings:
            raise InputError("Save Tuning: this model carries no tuning (connect Refine Identity or Load Tuning)")
        folder = os.path.join(folder_paths.get_output_directory(), paths.TUNINGS)
        full, name, counter, _, _ = folder_paths.get_save_image_path(filename_prefix, folder)
        path = os.path.join(full, f"{name}_{counter:05}_.safetensors")
        save_tuning(path, combine(model.tunings))
        log.info("clipinverter: wrote %s", path)
        return io.NodeOutput(ui={"text": [os.path.relpath(path, folder)]})


class LoadTuning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CLIPInverterLoadTuning",
            display_name="Load Tuning",
            category="CLIPInverter",
            description="Applies tuned weights saved before (Save Tuning, or `edit --save-tuning`) to the model they "
                        "were tuned on; another bundle is refused.",
            inputs=[
                types.Model.Input("model", tooltip="From Load Inverter: the bundle the tuning was made on."),
                io.Combo.Input("tuning", options=paths.tuning_names(),
                               tooltip=f"A file in the {paths.TUNINGS} model folder (the output folder's "
                                       f"{paths.TUNINGS}/, or models/{paths.TUNINGS})."),
                io.Float.Input("strength", default=1.0, min=0.0, max=1.5, step=0.05,
                               tooltip="How much of the tuned change: 1 the tuned weights, 0 the base ones."),
            ],
            outputs=[types.Model.Output(display_name="model", tooltip="The model with its generator tuned.")],
        )

    @classmethod
    def validate_inputs(cls, tuning) -> bool | str:
        return True if paths.tuning_path(tuning) else f"no tuned weights named '{tuning}' in the {paths.TUNINGS} folder"

    @classmethod
    def execute(cls, model, tuning, strength) -> io.NodeOutput:
        return io.NodeOutput(model.with_tuning(load_tuning(paths.tuning_path(tuning)), strength))
