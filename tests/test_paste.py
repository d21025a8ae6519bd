"""Paste-back that nobody can spot: the edited crop takes the photo's colours at the mask's border (a cast put
on purpose into the crop is cut at least 5x there), no seam along the mask's edge, and the blend mask comes out,
shaped by `grow` and `feather`. The test photos are the astronaut (scikit-image), its head and shoulders, and a
crop whose face reaches past the photo's edge."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clipinverter_core import align as A

from skimage import data as skimage_data  # requirements-dev.txt: a missing install fails, never skips
import dlib  # noqa: F401,E402 - requirements.txt (dlib-bin): imported for real, no skip
import kornia.color as kornia_color  # noqa: E402


def white_balance(c: torch.Tensor) -> torch.Tensor:
    """A white-balance and exposure cast: per-channel gains and offsets in RGB (no channel clips)."""
    gain, offset = torch.tensor([0.85, 0.95, 0.8]), torch.tensor([0.08, 0.02, 0.0])
    return (c * gain[:, None, None] + offset[:, None, None]).clamp(0, 1)


def lab_cast(c: torch.Tensor) -> torch.Tensor:
    """Darker, redder and bluer in CIELAB: a cast that is not affine in RGB."""
    lab = kornia_color.rgb_to_lab(c[None])
    lab = lab * torch.tensor([0.85, 1, 1])[:, None, None] + torch.tensor([5.0, 8.0, -10.0])[:, None, None]
    return kornia_color.lab_to_rgb(lab, clip=True)[0]


@pytest.fixture(scope="module", params=["astronaut", "head_and_shoulders", "near_edge"])
def aligned(request):
    img = skimage_data.astronaut()
    img = {"astronaut": img, "head_and_shoulders": img[0:300, 60:380], "near_edge": img[40:300, 150:400]}[request.param]
    photo = A.to_unit_tensor(np.ascontiguousarray(img))
    crops, al = A.align(photo, 256)
    return photo, crops, al


def gradient(x: torch.Tensor) -> torch.Tensor:
    """|dx| + |dy| per pixel of (1, 3, H, W), averaged over channels: (H - 1, W - 1)."""
    gx = (x[..., :-1, 1:] - x[..., :-1, :-1]).abs()
    gy = (x[..., 1:, :-1] - x[..., :-1, :-1]).abs()
    return (gx + gy).mean(1)[0]


def mask_edge(mask: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """(H - 1, W - 1) bool: pixels within `radius` of where the blend mask (H, W) crosses one half."""
    inside = (mask >= 0.5).float()[None, None]
    k = 2 * radius + 1
    ring = F.max_pool2d(inside, k, 1, radius) + F.max_pool2d(-inside, k, 1, radius)
    return ring[0, 0, :-1, :-1].bool()


@pytest.mark.parametrize("cast", [white_balance, lab_cast])
def test_colour_match_cuts_the_border_error_of_a_cast_at_least_5x(aligned, cast):
    photo, crops, al = aligned
    true_colours, mask = A.paste_back_with_mask(photo, crops, al, color_match=0.0)
    border = ((mask > 0) & (mask < 1))[0]  # the feather band, where the crop and the photo overlap
    cast_crop = cast(crops[0])[None]

    def border_error(color_match):
        out = A.paste_back(photo, cast_crop, al, color_match=color_match)
        return (out - true_colours).abs().mean(1)[0][border].mean().item()

    plain, matched = border_error(0.0), border_error(1.0)
    assert plain > 0.02  # the cast is visible
    assert matched * 5 <= plain
    assert matched < border_error(0.5) < plain  # color_match blends between the two


def test_no_seam_along_the_mask_edge(aligned):
    photo, crops, al = aligned
    out, mask = A.paste_back_with_mask(photo, white_balance(crops[0])[None], al)  # the defaults
    edge = mask_edge(mask[0])
    assert edge.sum() > 100
    assert gradient(out)[edge].mean() <= 1.1 * gradient(photo)[edge].mean()


def test_the_colour_statistics_come_from_the_border_only(aligned):
    """An edit inside the face (here: the middle of the crop painted red) does not change the colour map."""
    photo, crops, al = aligned
    edited = crops.clone()
    edited[:, :, 96:160, 96:160] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]
    a = A.paste_back(photo, white_balance(crops[0])[None], al)
    b = A.paste_back(photo, white_balance(edited[0])[None], al)
    corner = al.faces[0].quad[0].round().astype(int)  # the crop's top-left corner region: untouched by the edit
    x, y = max(corner[0], 0) + 30, max(corner[1], 0) + 30
    torch.testing.assert_close(a[..., y - 5:y + 5, x - 5:x + 5], b[..., y - 5:y + 5, x - 5:x + 5], atol=1e-5, rtol=0)


def test_the_blend_mask_comes_out_shaped_by_grow_and_feather(aligned):
    photo, crops, al = aligned
    out, mask = A.paste_back_with_mask(photo, crops, al, feather=0.1, color_match=0.0)
    assert mask.shape == (1, *photo.shape[2:]) and 0 <= mask.min() and mask.max() == 1
    outside = (mask == 0)[:, None].expand_as(photo)
    assert torch.equal(out[outside], photo[outside])  # outside the mask: the photo, bit for bit
    hard = A.paste_back_with_mask(photo, crops, al, feather=0.0, color_match=0.0)[1]
    assert ((hard > 0) & (hard < 1)).sum() < ((mask > 0) & (mask < 1)).sum()  # feather widens the ramp
    shrunk = A.paste_back_with_mask(photo, crops, al, feather=0.1, grow=-0.1, color_match=0.0)[1]
    assert (shrunk <= mask + 1e-6).all() and (shrunk > 0).sum() < 0.8 * (mask > 0).sum()
    np.testing.assert_allclose(A.face_mask(64, 0.1, grow=-0.25)[:16].numpy(), 0)  # grow -0.25: the outer quarter
    assert A.face_mask(64, 0.0, grow=0.0).min() == 1
