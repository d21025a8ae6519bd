"""The `clipinverter` model folder: ComfyUI/models/clipinverter, merged with extra_model_paths.yaml entries."""
from __future__ import annotations

import os

import folder_paths

from ..clipinverter_core.weights.folder import OfficialFiles, bundle_name, official_files_in
from ..clipinverter_core.weights.sources import official_files_help

FOLDER = "clipinverter"
TUNINGS = "clipinverter_tunings"   # tuned weights (Save Tuning writes the output folder's, Load Tuning lists both)
EXTENSIONS = {".safetensors"}


def register_model_folder() -> None:
    """Adds models/clipinverter as the default path, keeping paths extra_model_paths.yaml already gave."""
    folder_paths.add_model_folder_path(FOLDER, os.path.join(folder_paths.models_dir, FOLDER), is_default=True)
    paths, extensions = folder_paths.folder_names_and_paths[FOLDER]
    folder_paths.folder_names_and_paths[FOLDER] = (paths, set(extensions) | EXTENSIONS)
    folder_paths.add_model_folder_path(TUNINGS, os.path.join(folder_paths.models_dir, TUNINGS), is_default=True)
    folder_paths.add_model_folder_path(TUNINGS, os.path.join(folder_paths.get_output_directory(), TUNINGS))
    paths, extensions = folder_paths.folder_names_and_paths[TUNINGS]
    folder_paths.folder_names_and_paths[TUNINGS] = (paths, set(extensions) | EXTENSIONS)


def model_folders() -> list[str]:
    """The clipinverter model folders (where the LPIPS network of identity tuning is looked for too)."""
    return folder_paths.get_folder_paths(FOLDER)


def tuning_names() -> list[str]:
    return folder_paths.get_filename_list(TUNINGS)


def tuning_path(name: str) -> str | None:
    path = folder_paths.get_full_path(TUNINGS, name) if name else None
    return path if path is not None and os.path.isfile(path) else None


def bundle_names() -> list[str]:
    """The bundles of the folder, and the catalog's bundle name (clipinverter_faces.safetensors) where the official
    files it is made from sit in the folder unconverted: choosing it converts them (pending_conversion)."""
    names = folder_paths.get_filename_list(FOLDER)
    name = bundle_name()
    return names + [name] if name not in names and pending_conversion(name) is not None else names


def pending_conversion(name: str) -> OfficialFiles | None:
    """For the catalog's bundle name, not converted yet: the official files of the first clipinverter folder that
    holds all three (the bundle is written beside them). None otherwise."""
    if name != bundle_name() or has_bundle(name):
        return None
    return next((files for files in map(official_files_in, model_folders()) if files is not None), None)


def missing_bundle_message(name: str) -> str:
    """Names the file, the folders searched, and where the weights come from."""
    folders = ", ".join(folder_paths.get_folder_paths(FOLDER)) or f"ComfyUI/models/{FOLDER}"
    return (f"CLIPInverter bundle '{name}' is not in the '{FOLDER}' model folder ({folders}). "
            f"Put a converted bundle there, or the three official files as downloaded: Load Inverter then offers "
            f"{bundle_name()} and converts them once. " + official_files_help())


def bundle_path(name: str) -> str:
    if not has_bundle(name):
        raise FileNotFoundError(missing_bundle_message(name))
    return folder_paths.get_full_path(FOLDER, name)


def has_bundle(name: str) -> bool:
    path = folder_paths.get_full_path(FOLDER, name) if name else None
    return path is not None and os.path.isfile(path)
