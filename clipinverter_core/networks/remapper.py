"""The CLIPRemapper: the generator's styled-conv codes moved towards a text embedding, code k (k >= 1) by its own
MLP M_k and weight lambda_k."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .modconv import STYLE_DIM

REMAP_LAMBDA_SCALE = 0.9      # l_k = 0.9 * lambda_k, the official constant


def remapper_mlp() -> nn.Sequential:
    """M_k: Linear -> ReLU -> Linear -> LayerNorm -> ReLU -> Linear (indices 0, 2, 3, 5 hold weights)."""
    d = STYLE_DIM
    return nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d), nn.LayerNorm(d), nn.ReLU(), nn.Linear(d, d))


class CLIPRemapper:
    """Mixin of the Generator: the remapper's parameters are the generator's own (`affine_mlps.N`, `lambdas.N`, as
    the official checkpoints name them). Reads the generator's `has_remapper`, `n_conv` and `fused`; once fused,
    the MLPs run as one batched pass over stacked weights."""

    STACKED = tuple(f"remap_{kind}_{i}" for i in (0, 2, 5) for kind in ("weight", "bias")) + \
        ("remap_norm_weight", "remap_norm_bias")

    def _add_remapper(self, n: int) -> None:
        """M_k and lambda_k for the conv codes 1..n."""
        self.affine_mlps = nn.ModuleList([remapper_mlp() for _ in range(n)])
        self.lambdas = nn.ParameterList([nn.Parameter(torch.empty(())) for _ in range(n)])

    def _apply(self, fn, recurse=True):
        """Module.to(), .cuda(), .half() ...: the stacked remapper buffers are dropped, the parameters moved
        (or cast), and the stacks built again from them, so the MLPs' parameters are views of the stacks
        again. Moved on their own, stacks and parameters would be two copies on the new device."""
        stacked = [name for name in self.STACKED if self._buffers.get(name) is not None]
        for name in stacked:
            del self._buffers[name]
        super()._apply(fn, recurse)
        if stacked:
            self._stack_remapper()
        return self

    def _stack_remapper(self) -> None:
        """The remapper's MLPs as stacked weights (n, in, out) for batched products; the MLPs' parameters
        become views of them (no second copy). The LayerNorms' stacks are copies (16 x 2 x 512 values)."""
        for i in (0, 2, 5):  # the Linear layers of M_k
            layers = [mlp[i] for mlp in self.affine_mlps]
            weight = torch.stack([m.weight for m in layers])                          # (n, out, in)
            bias = torch.stack([m.bias for m in layers])[:, None]                     # (n, 1, out)
            for k, m in enumerate(layers):
                m.weight.data, m.bias.data = weight[k], bias[k, 0]
            self.register_buffer(f"remap_weight_{i}", weight, persistent=False)
            self.register_buffer(f"remap_bias_{i}", bias, persistent=False)
        norms = [mlp[3] for mlp in self.affine_mlps]
        self.register_buffer("remap_norm_weight", torch.stack([m.weight for m in norms])[:, None], persistent=False)
        self.register_buffer("remap_norm_bias", torch.stack([m.bias for m in norms])[:, None], persistent=False)
        self.remap_norm_eps = norms[0].eps

    def _remapper_mlps(self, t: torch.Tensor) -> torch.Tensor:
        """All M_k(t) at once: (n, B, 512)."""
        lin = lambda i, h: torch.baddbmm(getattr(self, f"remap_bias_{i}"), h,  # noqa: E731
                                         getattr(self, f"remap_weight_{i}").transpose(1, 2))
        h = F.relu_(lin(0, t.expand(len(self.affine_mlps), *t.shape)))
        h = F.layer_norm(lin(2, h), (STYLE_DIM,), eps=self.remap_norm_eps)
        h = F.relu_(torch.addcmul(self.remap_norm_bias, h, self.remap_norm_weight))
        return lin(5, h)

    def remap(self, conv_codes: torch.Tensor, t: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        """Conv code k (k >= 1) <- (1 - l_k) * code_k + l_k * M_k(t), l_k = 0.9 * strength * lambda_k."""
        if not self.has_remapper:
            raise ValueError("this generator has no CLIPRemapper weights")
        assert t.shape[0] == conv_codes.shape[0], (tuple(t.shape), tuple(conv_codes.shape))
        assert conv_codes.ndim == 3 and conv_codes.shape[1] == self.n_conv, (tuple(conv_codes.shape), self.n_conv)
        if self.fused:
            lam = torch.stack(list(self.lambdas)).view(1, -1, 1) * (REMAP_LAMBDA_SCALE * strength)
            mapped = self._remapper_mlps(t).transpose(0, 1)                              # (B, n, 512)
            return torch.cat([conv_codes[:, :1], conv_codes[:, 1:] * (1 - lam) + mapped * lam], 1)
        rows = [conv_codes[:, 0]]
        for k, (mlp, lam) in enumerate(zip(self.affine_mlps, self.lambdas)):
            l_k = lam * REMAP_LAMBDA_SCALE * strength
            rows.append(conv_codes[:, k + 1] * (1 - l_k) + mlp(t) * l_k)
        return torch.stack(rows, 1)
