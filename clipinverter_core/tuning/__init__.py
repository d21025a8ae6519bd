"""Pivotal tuning of the generator (PTI for photos, STIT for clips): the person's identity kept through the edit.

    settings.py     the hyper-parameters and the two official loops' defaults
    coach.py        the tuning loop (PivotalTuner) and its result (Tuning: the change of each tuned tensor)
    regulariser.py  PTI's locality regulariser
    apply.py        a CLIPInverter whose generator carries a Tuning; refine_identity, the API's entry
    file.py         tuned weights as a small safetensors file, bound to the base bundle's sha256
"""
from .apply import bundle_sha256, check_base, refine_identity, with_tuning
from .coach import PivotalTuner, combine, Tuning, Visit, synthesis_parameters, synthesise
from .file import load_tuning, save_tuning
from .settings import CLIP, MODES, PHOTO, TuningSettings, defaults, from_official

__all__ = ["refine_identity", "with_tuning", "bundle_sha256", "check_base", "combine", "load_tuning", "save_tuning", "PivotalTuner", "Tuning", "Visit", "TuningSettings", "PHOTO", "CLIP", "MODES", "defaults",
           "from_official", "synthesise", "synthesis_parameters"]
