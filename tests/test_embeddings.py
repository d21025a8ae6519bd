"""Norm matching of reference-image embeddings (clipinverter_core.embeddings.match_norm), stated as its spec."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from clipinverter_core.embeddings import NORM_REFERENCE_PROMPT, match_norm

DIM = 512


def _embeddings(n, scale, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, DIM, generator=g) * scale


def test_each_matched_embedding_has_the_text_embeddings_norm_and_its_image_embeddings_direction():
    images = _embeddings(4, 3.0, seed=0) * torch.tensor([[0.5], [1.0], [2.0], [7.0]])  # lengths of all sorts
    text = _embeddings(1, 0.4, seed=1)  # one reference text: every row takes its length
    matched = match_norm(images, text)
    assert matched.shape == images.shape and matched.dtype == torch.float32
    torch.testing.assert_close(matched.norm(dim=-1), text.norm().expand(4))
    torch.testing.assert_close(F.normalize(matched, dim=-1), F.normalize(images, dim=-1))
    assert (F.cosine_similarity(matched, images, dim=-1) > 1 - 1e-6).all()  # the same way, never flipped


def test_one_reference_per_row_pairs_up_and_a_matched_embedding_is_left_as_it_is():
    images, texts = _embeddings(3, 2.0, seed=2), _embeddings(3, 0.5, seed=3)
    matched = match_norm(images, texts)
    torch.testing.assert_close(matched.norm(dim=-1), texts.norm(dim=-1))
    torch.testing.assert_close(match_norm(matched, texts), matched)  # already the length: unchanged
    torch.testing.assert_close(match_norm(texts, texts), texts)


def test_a_zero_embedding_stays_zero_and_never_becomes_nan():
    zero = torch.zeros(1, DIM)
    out = match_norm(zero, _embeddings(1, 1.0, seed=4))
    assert torch.isfinite(out).all() and (out == 0).all()


def test_the_node_default_reference_is_a_neutral_face_description():
    assert NORM_REFERENCE_PROMPT == "a photo of a face"
