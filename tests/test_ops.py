"""The hot ops: the fast implementations compute what the reference twins (the official formulation) compute."""
import pytest
import torch

from clipinverter_core.networks.stylegan2 import make_kernel
from clipinverter_core.ops import fused_leaky_relu, upfirdn2d


@pytest.mark.parametrize("up,down,pad,gain", [
    (1, 1, (2, 1), 1.0),     # ModulatedConv2d's blur after a transposed conv
    (2, 1, (2, 1), 4.0),     # ToRGB skip upsampling (polyphase)
    (2, 1, (1, 2), 4.0),     # polyphase, other phase offsets
    (4, 1, (1, 2), 16.0),    # polyphase, factor 4
    (2, 1, (1, 1), 4.0),     # an odd output size: zero insertion
    (1, 2, (1, 1), 1.0),     # downsampling
    (1, 1, (-1, 2), 1.0),    # a negative pad crops
])
def test_upfirdn2d_fast_matches_reference(up, down, pad, gain):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 9, 9, generator=g)
    k = make_kernel(gain=gain)
    fast = upfirdn2d(x, k, up=up, down=down, pad=pad)
    ref = upfirdn2d(x, k, up=up, down=down, pad=pad, impl="ref")
    assert fast.shape == ref.shape == (2, 5, (9 * up + sum(pad) - 4) // down + 1, (9 * up + sum(pad) - 4) // down + 1)
    torch.testing.assert_close(fast, ref, rtol=1e-6, atol=1e-6)


def test_upfirdn2d_asymmetric_kernel_is_a_true_convolution():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1
    k = torch.tensor([[0.0, 1.0], [0.0, 0.0]])  # impulse response lands mirrored, as in a convolution
    for impl in ("fast", "ref"):
        y = upfirdn2d(x, k, pad=(1, 0), impl=impl)
        assert y.shape == (1, 1, 5, 5)
        assert y[0, 0, 2, 3] == 1 and y.sum() == 1


def test_fused_leaky_relu():
    x = torch.tensor([[-1.0, 2.0]])
    y = fused_leaky_relu(x, torch.tensor([0.5, -1.0]))
    torch.testing.assert_close(y, torch.tensor([[-0.5 * 0.2, 1.0]]) * 2 ** 0.5)
