"""The example workflows in the real frontend (headless Chromium): each loads with no missing node, and the
text-edit example, queued from the page, runs to an image."""
from __future__ import annotations

import time

import pytest

from conftest import load_example
from example_specs import EXAMPLES


@pytest.fixture(scope="module")
def page(server):
    pytest.importorskip("playwright", reason="the browser test needs playwright (python)")
    from frontend import frontend

    with frontend(server.url) as p:
        yield p


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_loads_with_no_missing_node(page, name):
    from frontend import load

    assert load(page, load_example(name)) == []


def test_queued_text_edit_runs_to_an_image(page, server):
    from frontend import load, queue

    before = set(server.get("/history"))
    assert load(page, load_example("clipinverter_text_edit")) == []
    queue(page)
    deadline = time.time() + 300
    while time.time() < deadline:
        new = {k: v for k, v in server.get("/history").items() if k not in before}
        if new:
            (done,) = new.values()
            if done["status"].get("completed") is not None or done["status"]["status_str"] == "error":
                break
        time.sleep(1)
    else:
        pytest.fail("the queued workflow did not finish")
    assert done["status"]["status_str"] == "success", done["status"]
    assert [i for out in done["outputs"].values() for i in out.get("images", [])]
