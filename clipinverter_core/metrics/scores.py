"""Per-image scores of an edit: does it match the text (CLIP), and is it still the same person (ArcFace, LPIPS).

Every function takes batches on any device and returns a (B,) float32 tensor on that device, without gradients
(the trainer's validation calls them as they are). Images are (B, 3, H, W) in [-1, 1], the generator's range.
Batches of 1 broadcast against batches of B, as torch broadcasting does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..networks.clip import preprocess_for_clip

IDENTITY_SIZE = 256  # the side ArcFace's crop is cut from (the official IDLoss pools larger images to it)
PERCEPTUAL_SIZE = 256  # the side the LPIPS loss of training compares at (the generator output pooled to 256)
EPS = 1e-8  # below this a vector has no direction: its cosine is 0


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = torch.broadcast_tensors(a.float(), b.float())
    return F.cosine_similarity(a, b, dim=-1, eps=EPS)


@torch.no_grad()
def clip_score(clip_image_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
    """CLIP score: cos(E_I(edit), E_T(text)), the cosine between each edited image's CLIP image embedding and its
    target text's CLIP text embedding, in [-1, 1] (higher: the edit matches the text better). Raw cosine, not
    the 100x or 2.5 * max(cos, 0) rescalings some papers report. (B, 512) x (B or 1, 512) -> (B,)."""
    return _cosine(clip_image_embeddings, text_embeddings)


@torch.no_grad()
def directional_similarity(img_emb_src: torch.Tensor, img_emb_edit: torch.Tensor, txt_emb_src: torch.Tensor,
                           txt_emb_tgt: torch.Tensor) -> torch.Tensor:
    """Directional CLIP similarity: cos(E_I(edit) - E_I(input), E_T(target) - E_T(source)), where the source text
    is a neutral description of the input ("a photo of a face"). 1: the image moved exactly the way the text did,
    0: unrelated (or no change at all: a zero change has no direction), -1: the opposite way. All (B or 1, 512)
    -> (B,). The embeddings are L2-normalised first, as CLIP compares them."""
    n = [F.normalize(e.float(), dim=-1, eps=EPS) for e in (img_emb_src, img_emb_edit, txt_emb_src, txt_emb_tgt)]
    return _cosine(n[1] - n[0], n[3] - n[2])


def _to_side(images: torch.Tensor, side: int) -> torch.Tensor:
    """Larger images average-pooled to side x side (as the official losses pool 1024 outputs), smaller ones
    resized up (bilinear, antialiased)."""
    if images.shape[-2:] == (side, side):
        return images
    if min(images.shape[-2:]) >= side:
        return F.adaptive_avg_pool2d(images, (side, side))
    return F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False, antialias=True)


def _like(net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    p = next(net.parameters(), None)
    return images if p is None else images.to(p.device, p.dtype)


@torch.no_grad()
def identity_similarity(identity_net: torch.nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Identity similarity: cos(F(a), F(b)) of ArcFace IR-SE50 features (lossnets.load_arcface: the face crop of
    the 256 x 256 image, pooled to 112, as the official ID loss), in [-1, 1]; 1 is the same face. Images larger
    than 256 are average-pooled to 256 first, as training does. (B or 1, 3, H, W) pairs -> (B,) on a's device."""
    return _cosine(identity_features(identity_net, a), identity_features(identity_net, b)).to(a.device)


@torch.no_grad()
def identity_features(identity_net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """ArcFace features (B, 512) of images (B, 3, H, W) in [-1, 1], as identity_similarity compares them."""
    return identity_net(_like(identity_net, _to_side(images, IDENTITY_SIZE)))


@torch.no_grad()
def lpips_distance(perceptual_net: torch.nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LPIPS distance (AlexNet, v0.1: lossnets.load_lpips, the weights training uses) between a and b at 256 x 256
    (larger images average-pooled to it, as the training loss sees the generator output); 0 for identical
    images, larger for perceptually more different ones. (B or 1, 3, H, W) pairs -> (B,) on a's device."""
    a, b = torch.broadcast_tensors(_to_side(a, PERCEPTUAL_SIZE), _to_side(b, PERCEPTUAL_SIZE))
    return perceptual_net(_like(perceptual_net, a), _like(perceptual_net, b)).reshape(-1).float().to(a.device)


@torch.no_grad()
def image_embeddings(clip_model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """CLIP image embeddings (B, 512) float32, raw (not normalised), of images (B, 3, H, W) in [-1, 1], through
    the standard CLIP preprocessing (networks.clip.preprocess_for_clip: bicubic resize of the short side to 224,
    centre crop, CLIP's mean and std), on the CLIP model's device and in its dtype."""
    p = next(clip_model.parameters())
    x = preprocess_for_clip(((images.float() + 1) / 2).to(p.device))
    return clip_model.encode_image(x.to(p.dtype)).float()
