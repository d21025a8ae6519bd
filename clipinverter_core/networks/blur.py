"""StyleGAN2's FIR blur: the binomial filter every up- and down-sampling step applies, and the x2 upsampling."""
from __future__ import annotations

import torch
from torch import nn

from ..ops import upfirdn2d
from ..ops.upfirdn2d import prepare_taps

BLUR_KERNEL = (1, 3, 3, 1)    # binomial FIR filter of every up/down-sampling step


def make_kernel(k=BLUR_KERNEL, gain: float = 1.0) -> torch.Tensor:
    k = torch.tensor(k, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum() * gain


class Blur(nn.Module):
    up = 1

    def __init__(self, pad: tuple[int, int], gain: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", make_kernel(gain=gain))
        self.register_buffer("taps", None, persistent=False)  # the fast path's weights (`fuse`)
        self.pad = pad
        self.impl = "ref"

    def fuse(self) -> None:
        """The fast path, with its filter weights computed once (a buffer: it moves with the module)."""
        self.impl, self.taps = "fast", prepare_taps(self.kernel, self.up, self.pad)

    def forward(self, x):
        return upfirdn2d(x, self.kernel, up=self.up, pad=self.pad, impl=self.impl, taps=self.taps)


class Upsample(Blur):
    """x2 upsampling of the RGB skip: zero insertion and the blur kernel (gain 4 keeps the mean)."""
    up = 2

    def __init__(self):
        p = len(BLUR_KERNEL) - self.up
        super().__init__(((p + 1) // 2 + self.up - 1, p // 2), gain=self.up ** 2)
