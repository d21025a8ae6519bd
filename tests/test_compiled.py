"""compile=...: torch.compile of the heavy stages where a compiler is available, the same eager code where it is
not (no C++ compiler or Triton, MPS, Windows without a toolchain), with the same results either way."""
import logging
import shutil

import pytest
import torch

from clipinverter_core import compiled
from clipinverter_core.pipeline import CLIPInverter

from conftest import rel_l2, skip_unless_present
from test_fast import NETS, _inputs


@pytest.fixture(scope="module")
def eager(kit256):
    return CLIPInverter.from_bundle(kit256.bundle, "cpu", sections=NETS)


def test_a_failing_compiler_falls_back_to_the_same_eager_code(kit256, eager, monkeypatch, caplog):
    def no_compiler(fn, **kwargs):
        def broken(*args):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")
        return broken
    monkeypatch.setattr(torch, "compile", no_compiler)
    model = CLIPInverter.from_bundle(kit256.bundle, "cpu", sections=NETS, compile="default")
    x, t = _inputs(kit256.golden, 1)
    with caplog.at_level(logging.WARNING, logger="clipinverter"):
        first = model.edit(x, t)
        second = model.edit(x, t)
    stages = (model._backbone, model._heads, model._synthesis)
    assert all(isinstance(s, compiled.CompiledStage) and "InvalidCxxCompiler" in s.failed for s in stages)
    warnings = [r.getMessage() for r in caplog.records if "torch.compile" in r.getMessage()]
    assert len(warnings) == 3, warnings  # one per stage, not one per call
    expected = eager.edit(x, t)
    assert torch.equal(first.image, expected.image) and torch.equal(second.image, expected.image)
    assert torch.equal(first.w_hat, expected.w_hat)


def test_out_of_memory_is_not_swallowed_by_the_fallback(monkeypatch):
    def oom_compiler(fn, **kwargs):
        def run(*args):
            raise torch.OutOfMemoryError("CUDA out of memory")
        return run
    monkeypatch.setattr(torch, "compile", oom_compiler)
    stage = compiled.CompiledStage(lambda x: x + 1, "default", "test")
    with pytest.raises(torch.OutOfMemoryError):
        stage(torch.zeros(1))
    assert stage.failed is None


def test_a_torch_without_torch_compile_runs_eagerly(monkeypatch, caplog):
    def missing(fn, **kwargs):
        raise RuntimeError("Windows not yet supported for torch.compile")
    monkeypatch.setattr(torch, "compile", missing)
    with caplog.at_level(logging.WARNING, logger="clipinverter"):
        stage = compiled.CompiledStage(lambda x: x + 1, "reduce-overhead", "test")
    assert "Windows" in stage.failed and len(caplog.records) == 1
    assert torch.equal(stage(torch.zeros(2)), torch.ones(2))


def test_cuda_graph_modes_hand_back_copies_of_their_static_outputs(monkeypatch):
    """Under CUDA graphs the compiled function returns the same buffers every call; the pipeline keeps outputs
    across calls (chunks, latents between nodes), so the stage must return copies and mark each new step."""
    static = torch.zeros(3)
    steps = []

    def graphed(fn, **kwargs):
        def run(x):
            static.copy_(fn(x))
            return static, (static, 1)
        return run
    monkeypatch.setattr(torch, "compile", graphed)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: steps.append(1))
    stage = compiled.CompiledStage(lambda x: x * 2, "reduce-overhead", "test")
    a, (a2, one) = stage(torch.ones(3))
    b, _ = stage(torch.full((3,), 5.0))
    assert one == 1 and len(steps) == 2
    assert torch.equal(a, torch.full((3,), 2.0)) and torch.equal(a2, a)  # not overwritten by the second call
    assert torch.equal(b, torch.full((3,), 10.0))
    assert a.data_ptr() != static.data_ptr() and b.data_ptr() != static.data_ptr()


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="compile must be one of"):
        compiled.CompiledStage(lambda x: x, "fastest", "test")


def test_compiled_edit_matches_eager_on_cpu(kit256, eager):
    """A real compile on the CPU (Inductor, C++ kernels, frozen weights): same numbers as the eager fast path.
    Without a C++ compiler it skips, except in CI (CLIPINVERTER_REQUIRE_COMPILER=1), where it fails."""
    skip_unless_present(any(shutil.which(c) for c in ("g++", "c++", "cc")),
                        "no C++ compiler: torch.compile cannot build CPU kernels here", "CLIPINVERTER_REQUIRE_COMPILER")
    model = CLIPInverter.from_bundle(kit256.bundle, "cpu", sections=NETS, compile="default")
    x, t = _inputs(kit256.golden, 1)
    got, expected = model.edit(x, t), eager.edit(x, t)
    assert [s.failed for s in (model._backbone, model._heads, model._synthesis)] == [None, None, None]
    assert rel_l2(got.w, expected.w) < 1e-5
    assert rel_l2(got.w_hat - got.w, expected.w_hat - expected.w) < 1e-5
    assert rel_l2(got.image, expected.image) < 1e-5
