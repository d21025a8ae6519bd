"""Pictures in: the official preprocessing (PIL bilinear resize to 256, [-1, 1]); odd formats load upright."""
import numpy as np
import pytest
import torch
from PIL import Image

from clipinverter_core.errors import InputError
from clipinverter_core.images import (generator_to_unit, load_image, pil_to_encoder_input, tensor_to_encoder_input,
                                      unit_to_uint8)


def _picture(w=320, h=200):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_256_is_used_as_is_and_maps_to_minus_one_one():
    a = np.zeros((256, 256, 3), np.uint8)
    a[0, 0] = 255
    x = pil_to_encoder_input(Image.fromarray(a))
    assert x.shape == (1, 3, 256, 256) and x[0, :, 0, 0].tolist() == [1, 1, 1] and x[0, 0, 1, 1] == -1


def test_other_sizes_are_resized_as_torchvision_resize_does_on_pil():
    img = _picture()
    x = pil_to_encoder_input(img)
    ref = np.asarray(img.resize((256, 256), Image.BILINEAR), np.float32) / 255
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), (ref - 0.5) / 0.5, atol=1e-6)


def test_tensor_input_is_close_to_the_pil_path():
    img = _picture()
    t = torch.from_numpy(np.asarray(img, np.float32) / 255).permute(2, 0, 1)[None]
    a, b = tensor_to_encoder_input(t), pil_to_encoder_input(img)
    assert (a - b).abs().mean() < 0.02  # antialiased bilinear vs PIL's filter: same support, float rounding


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_images_are_refused(value):
    x = torch.rand(1, 3, 8, 8)
    x[0, 1, 2, 3] = value
    with pytest.raises(InputError, match="the images hold NaN or infinite values"):
        tensor_to_encoder_input(x)


def test_transparency_is_over_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (200, 40, 10)
    rgba[0, :, 3] = 0    # transparent: white
    rgba[1, :, 3] = 128  # half: halfway to white
    rgba[2:, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    Image.fromarray(rgba[..., [0, 3]], "LA").save(tmp_path / "la.png")
    rgb = np.asarray(load_image(str(tmp_path / "a.png")), np.int16)
    assert (rgb[0] == 255).all() and (rgb[2:] == (200, 40, 10)).all()
    half = 255 - (255 - np.array([200, 40, 10])) * 128 / 255
    assert np.abs(rgb[1] - half).max() <= 1
    gray = np.asarray(load_image(str(tmp_path / "la.png")), np.int16)
    assert (gray[0] == 255).all() and (gray[2:] == 200).all()
    # a palette PNG whose transparent entry is black: the transparent rows are white, not the entry's black
    pal = Image.fromarray(np.array([[0] * 4, [0] * 4, [1] * 4, [1] * 4], np.uint8), "P")
    pal.putpalette([0, 0, 0, 200, 40, 10] + [0] * 762)
    pal.save(tmp_path / "p.png", transparency=0)
    assert Image.open(tmp_path / "p.png").mode == "P" and "transparency" in Image.open(tmp_path / "p.png").info
    rgb = np.asarray(load_image(str(tmp_path / "p.png")), np.int16)
    assert (rgb[:2] == 255).all() and (rgb[2:] == (200, 40, 10)).all()


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK"])
def test_odd_modes_load_as_rgb(tmp_path, mode):
    img = _picture()
    if mode == "I;16":
        img = Image.fromarray((np.asarray(img.convert("L"), np.uint16) * 257).astype(np.uint16))
    else:
        img = img.convert(mode)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    img.save(path)
    out = load_image(str(path))
    assert out.mode == "RGB" and out.size == (320, 200)


def test_exif_rotation_is_applied(tmp_path):
    img = _picture(320, 200)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(str(tmp_path / "r.jpg")).size == (200, 320)


def test_pixels_out_truncate_like_comfyui_save_image():
    x = torch.tensor([-1.5, -1.0, 0.0, 0.999, 1.0, 3.0])
    assert unit_to_uint8(generator_to_unit(x).numpy()).tolist() == [0, 0, 127, 254, 255, 255]


@pytest.mark.parametrize("size", [(1, 1), (8000, 8000), (3000, 17)])
def test_tiny_huge_and_thin_pictures_become_encoder_input(tmp_path, size):
    Image.new("RGB", size, (200, 30, 30)).save(tmp_path / "x.png")
    x = pil_to_encoder_input(load_image(str(tmp_path / "x.png")))
    assert x.shape == (1, 3, 256, 256) and torch.isfinite(x).all()
    assert abs(float(x[0, 0].mean()) - (200 / 255 - 0.5) / 0.5) < 1e-3


def test_truncated_and_non_image_files(tmp_path):
    _picture().save(tmp_path / "x.jpg")
    data = (tmp_path / "x.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    (tmp_path / "text.png").write_text("hello")
    for name in ("cut.jpg", "text.png"):
        with pytest.raises(InputError, match="not a readable image"):
            load_image(str(tmp_path / name))
