"""Set-level realism: FID and KID between the edits and the inputs, on Inception-v3 pool features (torch-fidelity).

The Inception weights are a local file, never downloaded: torch-fidelity's
`weights-inception-2015-12-05-6726825d.pth` or pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (the same
TensorFlow 2015-12-05 network, the same keys). It is read with torch.load(weights_only=True) (weights/official.load_pt);
torch-fidelity's own loader would unpickle anything, so it only ever sees the checked tensors again.
"""
from __future__ import annotations

import io
import os

import numpy as np
import torch

from ..errors import CheckpointError, InputError
from ..images import generator_to_unit, unit_to_uint8

INCEPTION_FILES = ("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth")
INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth")
FEATURE_LAYER = "2048"  # the pool features FID and KID are defined on
KID_SUBSETS = 100  # torch-fidelity's defaults: 100 subsets of up to 1000 images, seed 2020
KID_SUBSET_SIZE = 1000
KID_SEED = 2020
MIN_IMAGES = 2  # a covariance needs two images; KID's unbiased estimate needs two per subset


def find_inception(explicit: str | None = None, folders: list[str] | None = None) -> str:
    """The Inception file: `explicit`, else the first of INCEPTION_FILES in `folders` (default: the folders the
    loss networks are looked for in). Missing -> CheckpointError naming the files, the folders and the source."""
    if explicit:
        if not os.path.isfile(explicit):
            raise CheckpointError(f"no Inception file at {explicit}")
        return explicit
    if folders is None:
        from ..lossnets import DEFAULT_FOLDERS
        folders = list(DEFAULT_FOLDERS)
    for folder in folders:
        for name in INCEPTION_FILES:
            if os.path.isfile(os.path.join(folder, name)):
                return os.path.join(folder, name)
    raise CheckpointError(f"no Inception file ({' or '.join(INCEPTION_FILES)}) in {', '.join(folders) or '-'}; "
                          f"FID and KID need it (nothing is downloaded): get {INCEPTION_URL}")


def load_inception(path: str, device: str | torch.device | None = None) -> torch.nn.Module:
    """torch-fidelity's InceptionV3 feature extractor (the FID network) with the file's weights, frozen, eval."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from ..weights.official import load_pt

    sd = load_pt(path)
    if not isinstance(sd, dict) or "Mixed_7c.branch_pool.conv.weight" not in sd:
        raise CheckpointError(f"{path}: not an Inception-v3 FID state dict (no 'Mixed_7c.branch_pool.conv.weight')")
    buf = io.BytesIO()
    torch.save({k: v.contiguous() for k, v in sd.items()}, buf)  # plain tensors we read safely
    buf.seek(0)
    try:
        net = FeatureExtractorInceptionV3("inception-v3-compat", [FEATURE_LAYER], feature_extractor_weights_path=buf)
    except RuntimeError as e:  # keys or shapes that do not fit
        raise CheckpointError(f"{path}: not an Inception-v3 FID state dict ({str(e).splitlines()[0]})") from None
    return net.to(device or "cpu")


@torch.no_grad()
def inception_features(net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(B, 2048) float32 pool features of images (B, 3, H, W) in [-1, 1], taken as the 8-bit pixels a PNG of
    them holds (FID is defined on 8-bit images; the network resizes to 299 itself)."""
    device = next(net.parameters()).device
    pixels = unit_to_uint8(generator_to_unit(images.float()))
    return net(pixels.to(device))[0].float()


def fid_kid(features_a: torch.Tensor, features_b: torch.Tensor) -> dict[str, float]:
    """FID and KID between two sets of Inception features (N_a, 2048), (N_b, 2048).

    FID = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), the Frechet distance of Gaussians fitted to the
    features (0 for identical sets; biased upwards for small sets, so compare sets of the same size).
    KID = the unbiased squared MMD with the cubic kernel k(x, y) = (x.y / 2048 + 1)^3, averaged over 100 random
    subsets of min(N, 1000) images (0 in expectation for sets from one distribution; kid_std is over subsets).
    Both through torch-fidelity's own functions. FID is unchanged by a rotation of the feature space, and the
    means and covariances of sets smaller than the 2048 features span fewer dimensions: it is computed in that
    span (the same number, without the eigenvalues of a 2048 x 2048 product: seconds on a CPU)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    a, b = features_a.double().cpu(), features_b.double().cpu()
    n = min(len(a), len(b))
    if n < MIN_IMAGES:
        raise InputError(f"FID and KID need at least {MIN_IMAGES} images per set, got {len(a)} and {len(b)}")
    fa, fb = _in_their_span(a, b)
    fid = fid_statistics_to_metric(fid_features_to_statistics(fa), fid_features_to_statistics(fb), verbose=False)
    kid = kid_features_to_metric(a, b, kid_subsets=KID_SUBSETS, kid_subset_size=min(n, KID_SUBSET_SIZE),
                                 rng_seed=KID_SEED, verbose=False, kid_kernel="poly", kid_kernel_poly_degree=3,
                                 kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)
    return {"fid": float(np.real(fid[KEY_METRIC_FID])), "kid": kid[KEY_METRIC_KID_MEAN],
            "kid_std": kid[KEY_METRIC_KID_STD]}


def _in_their_span(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """a, b in an orthonormal basis of the span of their centred rows and the difference of their means (where
    that span is smaller than the feature space): distances, covariances' spectra and traces are the same there."""
    ma, mb = a.mean(0), b.mean(0)
    span = torch.cat([a - ma, b - mb, (ma - mb)[None]])
    if span.shape[0] >= span.shape[1]:
        return a, b
    q = torch.linalg.qr(span.T).Q  # (features, rows): orthonormal columns spanning the rows of `span`
    return a @ q, b @ q
