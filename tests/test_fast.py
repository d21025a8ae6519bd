"""The fast path (impl="fast", the default) computes what the reference path (impl="ref", the official
formulation step for step) computes: stage by stage in float32, within 1e-2 of float32 in bf16 and fp16, with no
NaN or inf at any batch size; on the CPU, or on CLIPINVERTER_TEST_DEVICE (gpu_check.sh: cuda).

Where each low-precision check runs: the numerics at StyleGAN 256 on the CPU (CI), at 1024 on a GPU
(bench/gpu_check.sh sets CLIPINVERTER_TEST_DEVICE=cuda: real fp16 and bf16 kernels at the size users run); the
dtype of every 1024 layer on the meta device (test_device_safety.py, in CI)."""
import numpy as np
import pytest
import torch

from clipinverter_core.images import uint8_to_encoder_input
from clipinverter_core.pipeline import CLIPInverter

from conftest import DEVICE, rel_l2, report_figure

NETS = ("encoder", "adapter", "generator")
TOL_FP32 = 1e-5
TOL_LOW = 1e-2


def _inputs(g, batch: int):
    x = uint8_to_encoder_input(g["input_uint8"])
    t = torch.from_numpy(np.asarray(g["text_features"])).float()
    idx = [k % len(x) for k in range(batch)]
    return x[idx], t[idx]


@pytest.fixture(scope="module")
def pair(kit256):
    return (CLIPInverter.from_bundle(kit256.bundle, DEVICE, sections=NETS, impl="ref"),
            CLIPInverter.from_bundle(kit256.bundle, DEVICE, sections=NETS, impl="fast"))


@pytest.mark.parametrize("batch", [1, 3])  # batch 1 folds the styles into the weights; 3 scales the input
def test_every_stage_matches_the_reference(pair, kit256, batch):
    ref, fast = pair
    x, t = _inputs(kit256.golden, batch)
    w_r, f_r = ref.invert(x)
    w_f, f_f = fast.invert(x)
    for a, b in zip(f_f, f_r):
        assert rel_l2(a, b) < TOL_FP32
    assert rel_l2(w_f, w_r) < TOL_FP32
    hat_r, hat_f = ref.edit_codes(w_r, f_r, t), fast.edit_codes(w_r, f_r, t)
    assert rel_l2(hat_f - w_r, hat_r - w_r) < TOL_FP32
    lat_r, lat_f = ref.remap(hat_r, t), fast.remap(hat_r, t)
    assert rel_l2(lat_f.conv, lat_r.conv) < TOL_FP32
    img_r = ref.decode(lat_r)
    assert rel_l2(fast.decode(lat_r), img_r) < TOL_FP32
    whole = fast.edit(x, t)  # the fast edit runs both head passes as one batch
    assert rel_l2(whole.w_hat - whole.w, hat_r - w_r) < TOL_FP32
    assert rel_l2(whole.image, img_r) < TOL_FP32


def test_fusing_keeps_the_checkpoint_state(kit256):
    ref = CLIPInverter.from_bundle(kit256.bundle, "cpu", sections=NETS, impl="ref")
    fast = CLIPInverter.from_bundle(kit256.bundle, "cpu", sections=NETS, impl="fast")
    for name in NETS:
        a, b = getattr(ref, name).state_dict(), getattr(fast, name).state_dict()
        assert a.keys() == b.keys(), name
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_no_nan_or_inf_at_any_batch_size(pair, batch):
    _, fast = pair
    g = torch.Generator().manual_seed(batch)
    x = torch.rand(batch, 3, 256, 256, generator=g) * 2 - 1
    t = torch.randn(batch, 512, generator=g) * 10
    r = fast.edit(x, t)
    assert torch.isfinite(r.w_hat).all() and torch.isfinite(r.image).all()


LOW_SIZE = 1024 if torch.device(DEVICE).type == "cuda" else 256


@pytest.fixture(scope="module")
def fp32_edit(kit_factory):
    kit = kit_factory(LOW_SIZE)
    x, _ = _inputs(kit.golden, 1)
    caption = str(kit.golden["captions"][0])
    model = CLIPInverter.from_bundle(kit.bundle, DEVICE, "fp32")
    return kit, x, caption, model.edit(x, model.encode_text(caption))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_stays_within_1e_2_of_fp32(fp32_edit, precision):
    """The whole edit as a user runs it, CLIP text embedding included, in each precision."""
    kit, x, caption, r32 = fp32_edit
    low = CLIPInverter.from_bundle(kit.bundle, DEVICE, precision)
    r = low.edit(x, low.encode_text(caption))
    assert torch.isfinite(r.image).all()
    errors = {"text embedding": rel_l2(r.text_embedding, r32.text_embedding.cpu().numpy()),
              "w_hat - w": rel_l2(r.w_hat - r.w, (r32.w_hat - r32.w).cpu().numpy()),
              "image": rel_l2(r.image, r32.image.cpu().numpy())}
    report_figure(f"relative L2 of the low-precision edit against float32, StyleGAN {LOW_SIZE}, {DEVICE} (bound 1e-2)",
                  f"{precision}  " + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
    assert max(errors.values()) < TOL_LOW, errors
