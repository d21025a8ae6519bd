"""ComfyUI V3 nodes of CLIPInverter: thin adapters over clipinverter_core.

    Load Inverter -> Encode Text / Encode Image -> Invert with CLIPAdapter -> Remap Latent -> StyleGAN Decode
    Align Face -> ... -> Paste Back (whole photos)

loader.py (bundle -> model), align.py (photos -> aligned crops, edits -> photos), encode.py (texts, reference
pictures -> embeddings), edit.py (faces -> codes -> remapped codes), decode.py (codes -> IMAGE), latents.py (blend,
save, load), identity.py (Refine Identity, Save and Load Tuning: a generator tuned to a person), metrics.py (Edit
Metrics: scores of edits), video.py (Edit Video: a VIDEO file edited, streamed), clip_metrics.py (Clip Metrics: an
edited VIDEO against its source), images.py (IMAGE <-> the core's pictures), memory.py (ComfyUI model management
and the batch loop), paths.py (the clipinverter model folder), types.py (socket types).
Nothing here loads weights at import.
"""
from __future__ import annotations

# The V3 API pinned at v0_0_2: the newest version that ComfyUI 0.8.0 (the integration tests' server) and 0.3.48 (the
# floor in pyproject's requires-comfyui, where v0_0_2 first shipped) both have. `latest` moves with ComfyUI; a
# pinned version is kept as an adapter when it does.
from comfy_api.v0_0_2 import ComfyExtension, io

from .align import AlignFace, PasteBack
from .clip_metrics import ClipMetrics
from .decode import Decode
from .edit import InvertEdit, InvertOnly, Remap
from .encode import EncodeImage, EncodeText
from .identity import LoadTuning, RefineIdentity, SaveTuning
from .latents import BlendLatents, LoadLatent, SaveLatent
from .loader import LoadInverter
from .metrics import EditMetrics
from .paths import register_model_folder
from .video import EditVideo

NODES: list[type[io.ComfyNode]] = [LoadInverter, AlignFace, EncodeText, EncodeImage, InvertEdit, InvertOnly, Remap,
                                   Decode, PasteBack, BlendLatents, SaveLatent, LoadLatent, EditMetrics, RefineIdentity,
                                   SaveTuning, LoadTuning, EditVideo, ClipMetrics]

register_model_folder()  # before any schema lists the folder's files


class CLIPInverterExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES
