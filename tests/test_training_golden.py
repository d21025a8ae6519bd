"""Training fidelity: our train_step against what the official coaches computed (../shared/parity, README
"Training"). Rebuilt from each file and the recipe, at the file's seed; nothing is hard-coded.

- float64, step 1 of each stage: every logged loss, the total gradient of every trained tensor and the gradient
  of every loss term of each pass alone (norms to relative 1e-9, sums within 1e-9 x norm x sqrt(size), small
  tensors whole), and the change Ranger's first step makes.
- float32, the coach's own 7-step loop of each stage: step-1 losses to 1e-4, the later losses and the 7-step
  change of every trained tensor to 5e-2 (the official code's own spread in float32 is 1e-2).
The measured errors are printed (they reach CI's log)."""
from __future__ import annotations

import gc
import math

import pytest
import torch

from clipinverter_core.training.ranger import make_optimizer
from clipinverter_core.training.step import train_step
from conftest import PARITY, _need_kit
from training_kit import (GradCheck, Stats, Timer, batch_at, build_run, hparams_of, load_golden, peak_rss_gb, rel,
                          summarise, threads_for_batch)

F64_TOL = 1e-9
F32_STEP1_TOL = 1e-4
F32_LATER_TOL = 5e-2


def _golden(name):
    _need_kit()
    return load_golden(PARITY, name)


def check_losses(logs: dict, g: dict, step: int, tol: float, errors: list) -> float:
    """Every logged value of the coach at `step` (NaN: not logged that step) against ours; the worst error."""
    worst = 0.0
    for key in g["loss_keys"]:
        ref = float(g[f"loss/{key}"][step])
        if math.isnan(ref):
            assert key not in logs, f"step {step + 1}: we log {key}, the coach does not"
            continue
        e = rel(logs[key], ref)
        worst = max(worst, e)
        if e > tol:
            errors.append(f"step {step + 1} {key}: ours {logs[key]!r} official {ref!r} (rel {e:.2e})")
    return worst


class TermGradients:
    """The `inspect` hook of train_step that gives the gradient of each loss term of each pass alone, from the pass's
    one forward. Every term but one is differentiated alone (torch.autograd.grad, retain_graph). The pass's total is
    linear in its terms (total = sum_j c_j term_j, c_j its lambda, times cycle_lambda in the cycle pass), so the last
    term's gradient is what the pass's own backward added to the parameters' .grad, less c_j times the others, over
    its c_k: one backward through the generator fewer per pass. That term is the pixel loss where there is one: its
    weighted gradient is 100 to 700 times any other term's on the parity kit, so the subtraction costs no precision
    (the per-term errors stay at 1e-13 and 4e-12, bound 1e-9). Its check stays as strict: a wrong gradient of that
    term is a wrong .grad, which the total check compares too. Only the statistics are kept; `finish()` after the
    step derives the cycle pass's last term."""

    DERIVED = ("l2", "lpips", "id", "directional")

    def __init__(self, params: dict[str, torch.nn.Parameter]):
        self.params, self.shapes = params, {n: p.shape for n, p in params.items()}
        self.out: dict[str, dict[str, dict[str, Stats]]] = {}
        self._open = None   # (pass, derived term, c_k, .grad before the pass's backward, sum of c_j grad_j of the rest)

    def _grads(self) -> dict[str, torch.Tensor]:
        return {n: torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for n, p in self.params.items()}

    def __call__(self, pass_name: str, output) -> None:
        self.finish()
        terms, out = output.loss.terms, {}
        self.out[pass_name] = out
        live = [t for t, v in terms.items() if v.requires_grad]  # e.g. stage 2's W-norm: no remapper behind it
        coeffs = {t: 0.0 if c is None else float(c)  # None: a term outside the total (stage 2's W-norm, if live)
                  for t, c in zip(live, torch.autograd.grad(output.loss.total, [terms[t] for t in live],
                                                            retain_graph=True, allow_unused=True))}
        derived = next(t for t in self.DERIVED if coeffs.get(t, 0.0) != 0)
        rest = {n: torch.zeros_like(p) for n, p in self.params.items()}
        for term, value in terms.items():
            if term == derived:
                continue
            if term not in live:
                out[term] = summarise({}, self.shapes)
                continue
            gs = dict(zip(self.params, torch.autograd.grad(value, list(self.params.values()), retain_graph=True,
                                                            allow_unused=True)))
            out[term] = summarise(gs, self.shapes)
            for n, g in gs.items():
                if g is not None:
                    rest[n].add_(g, alpha=coeffs[term])
            del gs
        self._open = (pass_name, derived, coeffs[derived], self._grads(), rest)

    def finish(self) -> None:
        """Derives the open pass's last term, once its backward has run."""
        if self._open is None:
            return
        pass_name, derived, c, before, rest = self._open
        after = self._grads()
        self.out[pass_name][derived] = summarise({n: (after[n] - before[n] - rest[n]) / c for n in after}, self.shapes)
        self._open = None


@pytest.mark.parametrize("stage", [1, 2])
def test_float64_step1_matches_the_official_coach(stage, kit_factory, lossnet_factory, capsys):
    g = _golden(f"training_golden_f64_stage{stage}_256.npz")
    assert int(g["stage"]) == stage and str(g["dtype"]) == "float64"
    with Timer() as t_load:
        model, losses = build_run(g, kit_factory, lossnet_factory)
    params = dict(model.trainable_named_parameters())
    shapes = {n: p.shape for n, p in params.items()}
    hp = hparams_of(g)
    opt = make_optimizer(hp.optim_name, list(params.values()), hp.learning_rate)
    start = {n: p.detach().clone() for n, p in params.items()}
    terms = TermGradients(params)
    batch = batch_at(model, g, 0, hp.mismatch_probability)
    with Timer() as t_step, threads_for_batch(len(batch.x)):
        opt.zero_grad()
        result = train_step(model, losses, batch, inspect=terms)
        terms.finish()
    errors: list[str] = []
    worst_loss = check_losses(result.logs, g, 0, F64_TOL, errors)
    total = GradCheck(g, F64_TOL)
    total("grad1", summarise({n: p.grad for n, p in params.items()}, shapes), shapes)
    per_term = GradCheck(g, F64_TOL)
    for key in sorted({k.rsplit("/", 2)[0] for k in g if k.startswith("grad1_terms/") and "/norm/" in k}):
        _, pass_name, term = key.split("/")[:3]
        assert term in terms.out[pass_name], f"the coach computes {pass_name}/{term}, we do not"
        per_term(f"grad1_terms/{pass_name}/{term}", terms.out[pass_name][term], shapes)
    opt.step()
    delta = GradCheck(g, F64_TOL)
    delta("delta", summarise({n: p.detach() - start[n] for n, p in params.items()}, shapes), shapes)
    with capsys.disabled():
        print(f"\n[training golden f64 stage {stage}] worst relative error: losses {worst_loss:.2e}; "
              f"total gradient norm {total.worst['norm']:.2e} sum {total.worst['sum']:.2e} "
              f"full {total.worst['full']:.2e}; per-term gradient norm {per_term.worst['norm']:.2e} "
              f"sum {per_term.worst['sum']:.2e}; Ranger step-1 change norm {delta.worst['norm']:.2e} "
              f"full {delta.worst['full']:.2e} | load {t_load.s:.0f} s, step {t_step.s:.0f} s, "
              f"peak RSS {peak_rss_gb():.2f} GB")
    assert not errors + total.errors + per_term.errors + delta.errors, \
        "\n".join((errors + total.errors + per_term.errors + delta.errors)[:20])
    del model, losses, opt, terms, result
    gc.collect()


@pytest.mark.parametrize("stage", [1, 2])
def test_float32_seven_steps_follow_the_official_loop(stage, kit_factory, lossnet_factory, capsys):
    g = _golden(f"training_golden_stage{stage}_256.npz")
    assert int(g["stage"]) == stage and str(g["dtype"]) == "float32"
    model, losses = build_run(g, kit_factory, lossnet_factory)
    params = dict(model.trainable_named_parameters())
    hp = hparams_of(g)
    opt = make_optimizer(hp.optim_name, list(params.values()), hp.learning_rate)
    start = {n: p.detach().clone() for n, p in params.items()}
    errors: list[str] = []
    worst = [0.0, 0.0]
    with Timer() as t_run:
        for step in range(int(g["steps"])):
            opt.zero_grad()
            logs = train_step(model, losses, batch_at(model, g, step, hp.mismatch_probability)).logs
            opt.step()
            tol = F32_STEP1_TOL if step == 0 else F32_LATER_TOL
            worst[step > 0] = max(worst[step > 0], check_losses(logs, g, step, tol, errors))
    change = GradCheck(g, F32_LATER_TOL)
    changes = {n: p.detach() - start[n] for n, p in params.items()}
    worst_change = 0.0
    for n, d in changes.items():
        e = rel(float(d.double().norm()), float(g[f"delta/norm/{n}"]))
        worst_change = max(worst_change, e)
        if e > F32_LATER_TOL:
            change.errors.append(f"7-step change of {n}: rel {e:.2e}")
    with capsys.disabled():
        print(f"\n[training golden f32 stage {stage}] worst relative error: step-1 losses {worst[0]:.2e}, "
              f"steps 2-{int(g['steps'])} losses {worst[1]:.2e}, 7-step change norms {worst_change:.2e} | "
              f"{t_run.s / int(g['steps']):.1f} s/step, peak RSS {peak_rss_gb():.2f} GB")
    assert not errors + change.errors, "\n".join((errors + change.errors)[:20])
    del model, losses, opt
    gc.collect()
