"""The example workflows in the real frontend (headless Chromium): each loads with no missing node; queued from
the page, each runs to its images, except the upscaler example, which the server refuses for want of its
diffusion checkpoint alone. Widgets in example_specs.TEST_WIDGETS are set on the page first, as a user would
(Refine Identity's steps: 2 on the tests' CPU)."""
from __future__ import annotations

import time

import pytest

from .comfy_server import load_example
from .example_specs import EXAMPLES, NEEDS_CHECKPOINT, TEST_WIDGETS


@pytest.fixture(scope="module")
def page(server):
    pytest.importorskip("playwright", reason="the browser test needs playwright (python)")
    from .frontend import frontend

    with frontend(server.url) as p:
        yield p


def _new_entry(server, before: set, timeout_s: float = 300):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        new = {k: v for k, v in server.get("/history").items() if k not in before}
        for entry in new.values():
            if entry["status"].get("completed") is not None or entry["status"]["status_str"] == "error":
                return entry
        time.sleep(1)
    pytest.fail(f"the queued workflow did not finish in {timeout_s} s")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_loads_with_no_missing_node_and_runs_when_queued(page, server, name):
    from .frontend import load, queue, set_widgets

    before = set(server.get("/history"))
    assert load(page, load_example(name)) == []
    set_widgets(page, TEST_WIDGETS.get(name, {}))
    queue(page)
    if name in NEEDS_CHECKPOINT:
        errors = page.evaluate("() => window.app.lastNodeErrors")
        assert errors and {e["class_type"] for e in errors.values()} == {"CheckpointLoaderSimple"}, errors
        assert "ckpt_name" in str(errors)
        time.sleep(1)
        assert set(server.get("/history")) == before  # nothing ran
        return
    done = _new_entry(server, before)
    assert done["status"]["status_str"] == "success", done["status"]
    assert [i for out in done["outputs"].values() for i in out.get("images", [])]
