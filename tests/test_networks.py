"""Our modules carry the official names: every key and shape of the official files, and nothing else."""
import json

import pytest
import torch

from clipinverter_core.networks import CLIPAdapter, Encoder4Editing, Generator, n_latent_for, size_for
from conftest import need_parity_file


def _manifest(size):
    with open(need_parity_file(f"manifest_{size}.json")) as f:
        return json.load(f)


def _shapes(module):
    return {k: list(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("size", [256, 1024])
def test_state_dicts_have_the_official_keys_and_shapes(size):
    m = _manifest(size)
    n = n_latent_for(size)
    assert m["latent_avg"]["shape"] == [n, 512]
    with torch.device("meta"):
        nets = {"encoder": Encoder4Editing(n), "adapter": CLIPAdapter(), "decoder": Generator(size)}
    for section, module in nets.items():
        assert _shapes(module) == {k: e["shape"] for k, e in m[section].items()}, section


@pytest.mark.parametrize("size", [256, 1024])
def test_a_generator_is_built_at_the_widths_its_weights_have(size):
    """channels_of reads the released widths from the official shapes, and a stand-in's narrower ones from its own
    (the tests' standin256 is 64 wide): a bundle loads at whatever widths it was written."""
    from clipinverter_core.networks import channels_of
    from clipinverter_core.networks.stylegan2 import CHANNELS

    official = {k: torch.empty(e["shape"], device="meta") for k, e in _manifest(size)["decoder"].items()}
    assert channels_of(official, size) == CHANNELS
    narrow = {4: 48, **{2 ** i: 64 - 4 * i for i in range(3, 11)}}
    with torch.device("meta"):
        sd = Generator(size, channels=narrow).state_dict()
        rebuilt = Generator(size, channels=channels_of(sd, size))
    assert _shapes(rebuilt) == {k: list(v.shape) for k, v in sd.items()}
    assert sd["convs.0.conv.weight"].shape[1:3] == (narrow[8], narrow[4])


def test_an_encoder_is_built_at_the_head_width_its_weights_have():
    from clipinverter_core.networks import head_width_of

    official = {k: torch.empty(e["shape"], device="meta") for k, e in _manifest(256)["encoder"].items()}
    assert head_width_of(official) is None  # the released 512
    with torch.device("meta"):
        sd = Encoder4Editing(14, 64).state_dict()
        rebuilt = Encoder4Editing(14, head_width_of(sd))
        w = rebuilt.heads(rebuilt.backbone(torch.empty(2, 3, 256, 256)))
    assert head_width_of(sd) == 64 and _shapes(rebuilt) == {k: list(v.shape) for k, v in sd.items()}
    assert tuple(w.shape) == (2, 14, 512)  # the rows are W+ codes whatever the heads' width


def test_clip_keys_match_open_clip_vit_b32():
    from clipinverter_core.networks.clip import config_from_state_dict
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    m = _manifest(256)["clip"]
    sd = {k: torch.empty(e["shape"], device="meta") for k, e in m.items()}
    cfg = config_from_state_dict(sd)
    assert cfg["vision"] == dict(layers=12, width=768, patch_size=32, image_size=224)
    assert cfg["text"] == dict(context_length=77, vocab_size=49408, width=512, heads=8, layers=12)
    with torch.device("meta"):
        model = CLIP(512, vision_cfg=CLIPVisionCfg(**cfg["vision"]), text_cfg=CLIPTextCfg(**cfg["text"]),
                     quick_gelu=True)
    assert _shapes(model) == {k: e["shape"] for k, e in m.items()}


@pytest.mark.parametrize("size", [8, 64, 256, 1024])
def test_sizes_and_rows(size):
    g = Generator(size) if size <= 64 else None
    assert size_for(n_latent_for(size)) == size
    if g is not None:
        assert g.n_latent == n_latent_for(size) and g.n_conv == g.n_latent - 1
        assert len(g.affine_mlps) == len(g.lambdas) == g.n_conv - 1


def test_wplus_rows_drive_the_documented_layers():
    with torch.device("meta"):
        g = Generator(1024)
    w = torch.arange(18.0)[None, :, None].expand(1, 18, 512)
    conv, rgb = g.split_wplus(w)
    assert conv[0, :, 0].tolist() == list(range(17))             # conv1 <- 0, convs[k] <- k + 1
    assert rgb[0, :, 0].tolist() == [1, 3, 5, 7, 9, 11, 13, 15, 17]  # to_rgb1 <- 1, to_rgbs[j] <- 2j + 3


def test_bad_generator_size():
    with pytest.raises(ValueError, match="power of two"):
        Generator(300)
