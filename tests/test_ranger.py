"""Ranger against the official adapter/training/ranger.py (ranger_golden.npz: its updates on stored tensors and
gradients, float64, both learning rates) and its update rule in isolation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from clipinverter_core.training.ranger import BETAS, LOOKAHEAD_K, Ranger, make_optimizer
from conftest import PARITY, _need_kit
from training_kit import load_golden

TOL = 1e-10


def _groups(g: dict) -> list[str]:
    return sorted({k.split("/")[0] for k in g if k.startswith("lr")})


def test_every_parameter_at_every_step_matches_the_official_ranger(capsys):
    _need_kit()
    g = load_golden(PARITY, "ranger_golden.npz")
    steps = int(g["steps"])
    assert len(_groups(g)) == 2
    worst = worst_change = 0.0
    for group in _groups(g):
        lr = float(group[2:])
        names = sorted({k.split("/")[2] for k in g if k.startswith(f"{group}/init/")})
        params = {n: torch.nn.Parameter(torch.from_numpy(g[f"{group}/init/{n}"].copy())) for n in names}
        assert all(p.dtype == torch.float64 for p in params.values())
        opt = Ranger(list(params.values()), lr=lr)
        for s in range(steps):
            for n, p in params.items():
                p.grad = torch.from_numpy(g[f"{group}/grads/{n}"][s].copy())
            opt.step()
            for n, p in params.items():
                ref, init = g[f"{group}/params/{n}"][s], g[f"{group}/init/{n}"]
                ours = p.detach().numpy()
                e = np.linalg.norm(ours - ref) / np.linalg.norm(ref)
                ec = np.linalg.norm(ours - ref) / np.linalg.norm(ref - init)   # against the change itself
                worst, worst_change = max(worst, e), max(worst_change, ec)
                assert e <= TOL, f"{group} step {s + 1} {n}: relative error {e:.2e}"
    with capsys.disabled():
        print(f"\n[ranger golden] {steps} steps x 2 learning rates: worst relative error {worst:.2e} "
              f"(of the change from the start: {worst_change:.2e})")


def test_first_step_is_the_warm_up_momentum_step_on_the_centralised_gradient():
    """N_sma(1) = 1 <= 5: p <- p - lr / (1 - b1) * (1 - b1) g_c = p - lr * g_c; 1-D tensors are not centralised."""
    torch.manual_seed(0)
    w, b = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64)), torch.nn.Parameter(torch.randn(5).double())
    gw, gb = torch.randn(4, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    w0, b0 = w.detach().clone(), b.detach().clone()
    w.grad, b.grad = gw.clone(), gb.clone()
    Ranger([w, b], lr=0.01).step()
    torch.testing.assert_close(w.detach(), w0 - 0.01 * (gw - gw.mean(1, keepdim=True)), rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(b.detach(), b0 - 0.01 * gb, rtol=1e-13, atol=1e-15)


def test_rectified_steps_and_lookahead_sync():
    """With a constant gradient: after k steps the parameter is the midpoint of its start and the fast weights."""
    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = Ranger([p], lr=0.1)
    fast = torch.zeros(3, dtype=torch.float64)
    m = torch.zeros(3, dtype=torch.float64)
    v = torch.zeros(3, dtype=torch.float64)
    g = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    b1, b2 = BETAS
    n_max = 2 / (1 - b2) - 1
    for t in range(1, LOOKAHEAD_K + 1):
        p.grad = g.clone()
        opt.step()
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        n = n_max - 2 * t * b2 ** t / (1 - b2 ** t)
        if n > 5:
            r = ((1 - b2 ** t) * (n - 4) / (n_max - 4) * (n - 2) / n * n_max / (n_max - 2)) ** 0.5
            fast = fast - 0.1 * r / (1 - b1 ** t) * m / (v.sqrt() + 1e-5)
        else:
            fast = fast - 0.1 / (1 - b1 ** t) * m
        if t < LOOKAHEAD_K:
            torch.testing.assert_close(p.detach(), fast, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(p.detach(), 0.5 * fast, rtol=1e-12, atol=1e-15)


def test_state_dict_round_trip_continues_identically():
    torch.manual_seed(1)
    grads = [torch.randn(6, 2) for _ in range(9)]

    def run(split: int | None):
        p = torch.nn.Parameter(torch.ones(6, 2))
        opt = Ranger([p], lr=1e-2)
        for i, gr in enumerate(grads):
            if split is not None and i == split:
                state = opt.state_dict()
                p = torch.nn.Parameter(p.detach().clone())
                opt = Ranger([p], lr=1e-2)
                opt.load_state_dict(state)
            p.grad = gr.clone()
            opt.step()
        return p.detach()

    assert torch.equal(run(None), run(4))


def test_make_optimizer():
    p = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(make_optimizer("ranger", p, 5e-4), Ranger)
    adam = make_optimizer("adam", p, 1.5e-4)
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["lr"] == 1.5e-4
    with pytest.raises(ValueError, match="ranger"):
        make_optimizer("sgd", p, 1e-3)
