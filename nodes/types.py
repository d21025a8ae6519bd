"""The pack's own socket types. Pack-prefixed, never core LATENT: W+ codes must not reach a KSampler.

CLIPINVERTER_MODEL      nodes.memory.LoadedInverter: the core CLIPInverter + the ModelPatcher that moves it
CLIPINVERTER_EMBEDDING  torch.Tensor (B, 512) float32 on the CPU: raw CLIP embeddings (text or image)
CLIPINVERTER_LATENT     clipinverter_core.pipeline.Latent on the CPU, float32: W+ codes (B, n_latent, 512) and,
                        once remapped, the styled-conv codes (B, n_latent - 1, 512)
CLIPINVERTER_ALIGNMENT  clipinverter_core.align.Alignment: where each aligned crop sits in its photo (for Paste
                        Back); batch_index of each face refers to the photo batch given to Align Face
"""
from comfy_api.v0_0_2 import io

Model = io.Custom("CLIPINVERTER_MODEL")
Embedding = io.Custom("CLIPINVERTER_EMBEDDING")
Latent = io.Custom("CLIPINVERTER_LATENT")
Alignment = io.Custom("CLIPINVERTER_ALIGNMENT")
