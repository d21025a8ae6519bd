"""The `clipinverter` model folder: ComfyUI/models/clipinverter, merged with extra_model_paths.yaml entries."""
from __future__ import annotations

import os

import folder_paths

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
    return folder_paths.get_filename_list(FOLDER)


def missing_bundle_message(name: str) -> str:
    """Names the file, the folders searched, and where the weights come from."""
    folders = ", ".join(folder_paths.get_folder_paths(FOLDER)) or f"ComfyUI/models/{FOLDER}"
    return (f"CLIPInverter bundle '{name}' is not in the '{FOLDER}' model folder ({folders}). "
            f"Put a converted bundle there (models/README.md of this pack lists the sources). " + official_files_help())


def bundle_path(name: str) -> str:
    if not has_bundle(name):
        raise FileNotFoundError(missing_bundle_message(name))
    return folder_paths.get_full_path(FOLDER, name)


def has_bundle(name: str) -> bool:
    path = folder_paths.get_full_path(FOLDER, name) if name else None
    return path is not None and os.path.isfile(path)
