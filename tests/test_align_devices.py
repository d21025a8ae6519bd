"""Alignment on any device and in any float dtype: the FFT blur runs in float32 for half types (cuFFT refuses
non-power-of-two half-precision lengths, the CPU every half length), and everything after detection, paste-back
included, runs on PyTorch's `meta` device, which holds shapes and no data: nothing there copies to the host.
Detection is the one step that does (dlib reads host arrays); on a meta tensor it says so."""
import numpy as np
import pytest
import torch

from clipinverter_core import align as A
from clipinverter_core.align.resample import _gaussian_blur
from clipinverter_core.errors import InputError

from skimage import data as skimage_data  # requirements-dev.txt: a missing install fails, never skips
import dlib  # noqa: F401,E402 - requirements.txt (dlib-bin): imported for real, no skip


@pytest.fixture(scope="module")
def near_edge():
    """A crop whose quad reaches past the photo's edge: the reflect-pad + FFT-blur path runs."""
    return np.ascontiguousarray(skimage_data.astronaut()[40:300, 150:400])


@pytest.fixture(scope="module")
def near_edge_faces(near_edge):
    return [A.detect_faces(near_edge)]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_the_blur_takes_half_precision_and_keeps_its_dtype(dtype):
    x = torch.rand(3, 45, 37)  # odd lengths: not powers of two
    y = _gaussian_blur(x.to(dtype), 3.3)
    assert y.dtype == dtype
    torch.testing.assert_close(y.float(), _gaussian_blur(x, 3.3), atol=1e-2, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_half_precision_photo_aligns_through_the_padded_path(near_edge, near_edge_faces, dtype):
    photo = A.to_unit_tensor(near_edge)
    ref, _ = A.align(photo, 256, faces=near_edge_faces)
    crops, al = A.align(photo.to(dtype), 256, faces=near_edge_faces)
    assert crops.dtype == dtype
    assert (crops.float() - ref).abs().mean() < 2 / 255
    assert A.paste_back(photo.to(dtype), crops, al).dtype == dtype


@pytest.mark.parametrize("case", ["native", "near_edge", "large_shrunk"])
def test_alignment_and_paste_back_run_on_the_meta_device(near_edge, near_edge_faces, case):
    astronaut = skimage_data.astronaut()
    if case == "near_edge":
        shape, faces = near_edge.shape, near_edge_faces
    else:
        faces = [A.detect_faces(astronaut)]
        shape = astronaut.shape
        if case == "large_shrunk":  # the face 6.25x larger: the Lanczos shrink path; a meta photo needs no pixels
            k = 6.25
            faces = [[A.Face(tuple(int(v * k) for v in f.box), f.landmarks * k) for f in faces[0]]]
            shape = (int(shape[0] * k), int(shape[1] * k), 3)
    photo = torch.empty(1, 3, shape[0], shape[1], device="meta")
    crops, al = A.align(photo, 256, "all", faces=faces)
    assert crops.is_meta and crops.shape == (len(faces[0]), 3, 256, 256)
    out = A.paste_back(photo, torch.empty(len(faces[0]), 3, 1024, 1024, device="meta"), al)
    assert out.is_meta and out.shape == photo.shape
    images, masks = A.paste_edits(photo, crops[:1].expand(3, -1, -1, -1), A.Alignment(al.faces[:1], 1))
    assert images.shape[0] == masks.shape[0] == 3 and images.is_meta and masks.is_meta  # colour match included


def test_detection_is_the_one_host_copy_and_says_so_on_meta():
    with pytest.raises(InputError, match="copies the photo to the host.*meta"):
        A.detect_faces(torch.empty(3, 64, 64, device="meta"))
    with pytest.raises(InputError, match="meta"):
        A.align(torch.empty(1, 3, 64, 64, device="meta"))
