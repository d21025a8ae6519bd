"""Stand-ins for the ComfyUI modules the nodes import (comfy_api.v0_0_2, comfy.*, folder_paths), so that the node
tests run without ComfyUI. They record what the nodes ask of ComfyUI: model loads, progress, cancel checks.

`load_pack()` imports this checkout the way ComfyUI does: as a package under an arbitrary name, so the nodes'
relative imports of the core are exercised.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import types
import uuid

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACK_NAME = "custom_nodes_clipinverter_under_test"


# --- comfy_api.v0_0_2 --------------------------------------------------------------------------------------------
class _Port:
    io_type = None

    def __init__(self, id=None, display_name=None, tooltip=None, **options):
        self.id, self.display_name, self.tooltip, self.options = id, display_name, tooltip, options


def _comfytype(io_type):
    return type(io_type, (), {"io_type": io_type,
                              "Input": type("Input", (_Port,), {"io_type": io_type}),
                              "Output": type("Output", (_Port,), {"io_type": io_type})})


class _Schema:
    def __init__(self, node_id, display_name=None, category="sd", inputs=(), outputs=(), hidden=(), description="",
                 is_output_node=False, **flags):
        self.node_id, self.display_name, self.category = node_id, display_name, category
        self.inputs, self.outputs, self.description = list(inputs), list(outputs), description
        self.is_output_node, self.flags = is_output_node, flags


class _NodeOutput:
    def __init__(self, *args, ui=None, **kw):
        self.args, self.ui = args, ui

    @property
    def result(self):
        return self.args or None

    def __getitem__(self, i):
        return self.args[i]


class _ComfyNode:
    @classmethod
    def define_schema(cls):
        raise NotImplementedError


class VideoFromFile:
    """comfy_api's InputImpl.VideoFromFile: a VIDEO backed by a file (a path or BytesIO)."""

    def __init__(self, file):
        self.file = file

    def get_stream_source(self):
        if hasattr(self.file, "seek"):
            self.file.seek(0)
        return self.file


class _ComfyExtension:
    async def on_load(self):
        pass


def _make_io():
    io = types.ModuleType("comfy_api.v0_0_2.io")
    io.Custom = _comfytype
    for name, io_type in [("Image", "IMAGE"), ("Float", "FLOAT"), ("Int", "INT"), ("Boolean", "BOOLEAN"),
                          ("String", "STRING"), ("Combo", "COMBO"), ("Latent", "LATENT"), ("Mask", "MASK"),
                          ("Video", "VIDEO")]:
        setattr(io, name, _comfytype(io_type))
    io.Schema, io.NodeOutput, io.ComfyNode = _Schema, _NodeOutput, _ComfyNode
    return io


# --- comfy.model_management, comfy.model_patcher, comfy.utils -----------------------------------------------------
class InterruptProcessingException(Exception):
    pass


class Recorder:
    """What the nodes asked of ComfyUI; reset() between tests. `devices` are what model management reports
    (compute, offload, intermediate: CPU unless a test says otherwise, e.g. "meta"); `free_memory` is what
    get_free_memory answers, in bytes."""

    def reset(self):
        self.loads, self.progress, self.interrupt_after_checks, self.checks, self.freed = [], [], None, 0, []
        self.offloads = []
        self.devices = {"load": torch.device("cpu"), "offload": torch.device("cpu"), "intermediate": torch.device("cpu")}
        self.free_memory = 64 * 2 ** 30


RECORD = Recorder()
RECORD.reset()


def _make_mm():
    mm = types.ModuleType("comfy.model_management")
    mm.OOM_EXCEPTION = torch.cuda.OutOfMemoryError
    mm.InterruptProcessingException = InterruptProcessingException
    mm.get_torch_device = lambda: RECORD.devices["load"]
    mm.unet_offload_device = lambda: RECORD.devices["offload"]
    mm.intermediate_device = lambda: RECORD.devices["intermediate"]
    mm.get_free_memory = lambda dev=None, torch_free_too=False: RECORD.free_memory
    # ComfyUI's low-precision choice, as it decides it for plain devices: never on the CPU (nor here on meta)
    mm.should_use_bf16 = lambda device=None, model_params=0, prioritize_performance=True, manual_cast=False: \
        torch.device(device).type == "cuda"
    mm.should_use_fp16 = lambda device=None, model_params=0, prioritize_performance=True, manual_cast=False: \
        torch.device(device).type in ("cuda", "mps")
    loaded = []

    def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                        force_full_load=False):
        for m in models:
            m.load(m.load_device)
            if m not in loaded:
                loaded.append(m)
        RECORD.loads.append((list(models), memory_required, force_full_load))

    def free_memory(memory, device, keep_loaded=()):
        """Offloads every loaded model not kept, as ComfyUI's free_memory does when memory is short."""
        RECORD.freed.append(memory)
        for m in list(loaded):
            if m not in keep_loaded and m.load_device == device:
                m.detach()
                loaded.remove(m)

    def throw_exception_if_processing_interrupted():
        RECORD.checks += 1
        if RECORD.interrupt_after_checks is not None and RECORD.checks > RECORD.interrupt_after_checks:
            raise InterruptProcessingException()

    mm.load_models_gpu, mm.free_memory = load_models_gpu, free_memory
    mm.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
    mm.soft_empty_cache = lambda force=False: None
    return mm


class ModelPatcher:
    """Moves its module the way ComfyUI's ModelPatcher does: a full load moves each module that holds parameters
    (`.to` per module), then the whole model; `detach` moves the whole model to the offload device. Clones share
    the module and carry weight patches ("diff": weight + strength * diff). A load whose patches are not the ones in
    place restores the weights backed up (one backup for all clones), then patches, as ComfyUI 0.8.0's does: only
    the parameters of modules whose parameters are all their own (its `_load_list` skips a module with parameters
    beside children that hold some); `patch_weight_to_device` patches one key. The load sets
    `model.current_weight_patches_uuid`."""

    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.model, self.load_device, self.offload_device = model, load_device, offload_device
        self.patches, self.patches_uuid, self.backup = {}, uuid.uuid4(), {}

    def clone(self):
        n = ModelPatcher(self.model, self.load_device, self.offload_device)
        n.patches = {k: list(v) for k, v in self.patches.items()}
        n.patches_uuid, n.backup = self.patches_uuid, self.backup
        return n

    def add_patches(self, patches, strength_patch=1.0, strength_model=1.0):
        sd = self.model.state_dict()
        added = [k for k in patches if k in sd]
        for k in added:
            self.patches.setdefault(k, []).append((strength_patch, patches[k], strength_model, None, None))
        self.patches_uuid = uuid.uuid4()
        return added

    def load(self, device_to):
        for m in self.model.modules():
            if any(True for _ in m.parameters(recurse=False)):
                m.to(device_to)
        self.model.to(device_to)
        if getattr(self.model, "current_weight_patches_uuid", None) != self.patches_uuid:
            for key, weight in self.backup.items():
                _set_param(self.model, key, weight.to(device_to))
            self.backup.clear()
            for key in self.patches:
                owner = self.model.get_submodule(key.rpartition(".")[0])
                if len(list(owner.parameters(recurse=False))) == len(list(owner.parameters())):
                    self.patch_weight_to_device(key, device_to)
            self.model.current_weight_patches_uuid = self.patches_uuid

    def patch_weight_to_device(self, key, device_to=None, inplace_update=False):
        if key not in self.patches:
            return
        weight = self.model.get_parameter(key)
        if key not in self.backup:
            self.backup[key] = weight.detach().clone()
        out = self.backup[key].to(device_to or weight.device, torch.float32)
        for strength, (diff,), strength_model, _, _ in self.patches[key]:
            out = out * strength_model + strength * diff.to(out)
        _set_param(self.model, key, out.to(weight.dtype))

    def detach(self, unpatch_all=True):
        # meta tensors hold no values to copy back: there the offload can only allocate on the offload device
        on_meta = any(p.is_meta for p in self.model.parameters())
        self.model.to_empty(device=self.offload_device) if on_meta else self.model.to(self.offload_device)
        RECORD.offloads.append(self)


def _set_param(model, key: str, value: torch.Tensor) -> None:
    """comfy.utils.set_attr_param: the module's parameter replaced by a new one."""
    owner, _, name = key.rpartition(".")
    setattr(model.get_submodule(owner), name, torch.nn.Parameter(value, requires_grad=False))


class ProgressBar:
    def __init__(self, total, node_id=None):
        self.total, self.current, self.updates = total, 0, []
        RECORD.progress.append(self)

    def update_absolute(self, value, total=None, preview=None):
        if total is not None:
            self.total = total
        self.updates.append(value - self.current)
        self.current = value

    def update(self, value):
        self.current += value
        self.updates.append(value)


# --- folder_paths --------------------------------------------------------------------------------------------------
def _make_folder_paths(base: str):
    fp = types.ModuleType("folder_paths")
    fp.base_path = base
    fp.models_dir = os.path.join(base, "models")
    fp.folder_names_and_paths = {}

    def add_model_folder_path(name, path, is_default=False):
        if name in fp.folder_names_and_paths:
            paths = fp.folder_names_and_paths[name][0]
            if path not in paths:
                paths.insert(0, path) if is_default else paths.append(path)
        else:
            fp.folder_names_and_paths[name] = ([path], set())

    def get_folder_paths(name):
        return list(fp.folder_names_and_paths[name][0])

    def get_filename_list(name):
        paths, exts = fp.folder_names_and_paths[name]
        return sorted(f for p in paths if os.path.isdir(p) for f in os.listdir(p)
                      if not exts or os.path.splitext(f)[1] in exts)

    def get_full_path(name, filename):
        for p in fp.folder_names_and_paths.get(name, ([], set()))[0]:
            if os.path.isfile(os.path.join(p, filename)):
                return os.path.join(p, filename)
        return None

    def get_save_image_path(prefix, output_dir, w=0, h=0):
        sub, name = os.path.split(prefix)
        folder = os.path.join(output_dir, sub)
        os.makedirs(folder, exist_ok=True)
        counter = 1 + len([f for f in os.listdir(folder) if f.startswith(name + "_")])
        return folder, name, counter, sub, prefix

    fp.add_model_folder_path, fp.get_folder_paths = add_model_folder_path, get_folder_paths
    fp.get_filename_list, fp.get_full_path, fp.get_save_image_path = get_filename_list, get_full_path, get_save_image_path
    fp.get_input_directory = lambda: os.path.join(base, "input")
    fp.get_output_directory = lambda: os.path.join(base, "output")
    fp.get_temp_directory = lambda: os.path.join(base, "temp")
    return fp


def install(base: str) -> types.ModuleType:
    """Puts the stand-ins in sys.modules (ComfyUI's folders under `base`); returns the folder_paths stand-in."""
    io = _make_io()
    pinned = types.ModuleType("comfy_api.v0_0_2")  # the pack's pinned V3 version; no `latest`: an import of it fails
    pinned.io, pinned.ComfyExtension = io, _ComfyExtension
    pinned.InputImpl = types.SimpleNamespace(VideoFromFile=VideoFromFile)
    comfy_api = types.ModuleType("comfy_api")
    comfy_api.v0_0_2 = pinned
    comfy = types.ModuleType("comfy")
    comfy.model_management = _make_mm()
    comfy.model_patcher = types.ModuleType("comfy.model_patcher")
    comfy.model_patcher.ModelPatcher = ModelPatcher
    comfy.utils = types.ModuleType("comfy.utils")
    comfy.utils.ProgressBar = ProgressBar
    fp = _make_folder_paths(base)
    for d in ("models", "input", "output"):
        os.makedirs(os.path.join(base, d), exist_ok=True)
    sys.modules.update({"comfy_api": comfy_api, "comfy_api.v0_0_2": pinned, "comfy": comfy,
                        "comfy.model_management": comfy.model_management, "comfy.model_patcher": comfy.model_patcher,
                        "comfy.utils": comfy.utils, "folder_paths": fp})
    return fp


STUBBED = ("comfy_api", "comfy_api.v0_0_2", "comfy", "comfy.model_management", "comfy.model_patcher", "comfy.utils",
           "folder_paths")


@contextlib.contextmanager
def installed(base: str):
    """install(base) for the length of a with-block (a module fixture's life); sys.modules as it was after it."""
    saved = {k: sys.modules.get(k) for k in STUBBED}
    before = set(sys.modules)
    try:
        yield install(base)
    finally:
        # the packs load_pack() imported go too: their modules hold the models they loaded (the stub model
        # management's list, the nodes' caches), which would otherwise stay resident under every later test
        for k in set(sys.modules) - before:
            if k.startswith(PACK_NAME):
                del sys.modules[k]
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def load_pack(name: str = PACK_NAME):
    """Imports this checkout as a package named `name` (as ComfyUI imports custom_nodes/<folder>)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "__init__.py"),
                                                  submodule_search_locations=[ROOT])
    pack = importlib.util.module_from_spec(spec)
    sys.modules[name] = pack
    spec.loader.exec_module(pack)
    importlib.import_module(f"{name}.nodes")
    return pack
