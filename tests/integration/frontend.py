"""Drives the real ComfyUI frontend in headless Chromium (Debian's /usr/bin/chromium; Playwright's own browser
download is not used): build a graph with the frontend's own API and serialise it as its Save does, load a
workflow, list missing node types, queue, screenshot."""
from __future__ import annotations

import contextlib
import os
import urllib.request

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

_BUILD = """(spec) => {
  const LG = window.LiteGraph, g = window.app.graph;
  g.clear();
  const made = {};
  for (const n of spec.nodes) {
    const node = LG.createNode(n.type);
    if (!node) throw new Error('unknown node type ' + n.type);
    node.pos = n.pos;
    g.add(node);
    if (n.size) node.setSize(n.size);
    for (const [name, value] of Object.entries(n.widgets || {})) {
      const w = (node.widgets || []).find(w => w.name === name);
      if (!w) throw new Error(n.type + ' has no widget ' + name);
      w.value = value;
    }
    Object.assign(node.properties, n.properties || {});
    made[n.key] = node;
  }
  for (const [a, out, b, inp] of spec.links) {
    const A = made[a], B = made[b];
    const oi = A.outputs.findIndex(o => o.name === out), ii = B.inputs.findIndex(i => i.name === inp);
    if (oi < 0 || ii < 0) throw new Error(`no slot ${a}.${out} -> ${b}.${inp}`);
    A.connect(oi, B, ii);
  }
  g.setDirtyCanvas(true, true);
  return JSON.parse(JSON.stringify(g.serialize()));
}"""

_MISSING = """() => window.app.graph.nodes
  .filter(n => !window.LiteGraph.registered_node_types[n.type] || n.has_errors)
  .map(n => n.type)"""


def _no_first_run_templates(url: str) -> None:
    """On a server's first run the frontend opens its template browser over the canvas, seconds late on a busy
    machine (over a thumbnail taken meanwhile): the setting it sets itself on that run says the run is not the
    first."""
    req = urllib.request.Request(url + "/settings/Comfy.TutorialCompleted", data=b"true", method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()


@contextlib.contextmanager
def frontend(url: str, width: int = 1600, height: int = 900):
    """A page with the ComfyUI frontend of the server at `url`, ready (window.app.graph exists)."""
    from playwright.sync_api import sync_playwright

    _no_first_run_templates(url)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", timeout=120_000)
            page.wait_for_timeout(1500)  # first-run dialogs and node definitions settle
            page.keyboard.press("Escape")
            yield page
        finally:
            browser.close()


def build(page, spec: dict) -> dict:
    return page.evaluate(_BUILD, spec)


def load(page, workflow: dict) -> list[str]:
    """Loads a UI-format workflow as the frontend's Open does; returns the node types it could not create."""
    page.evaluate("(wf) => window.app.loadGraphData(wf)", workflow)
    page.wait_for_timeout(500)
    page.keyboard.press("Escape")  # a missing-nodes / missing-models dialog, if any
    return page.evaluate(_MISSING)


def set_widgets(page, changes: dict) -> None:
    """Sets widget values of the loaded graph, as a user would before queueing: {node type: {widget: value}}."""
    page.evaluate("""(changes) => { for (const n of window.app.graph.nodes)
      for (const [name, value] of Object.entries(changes[n.type] || {})) {
        const w = (n.widgets || []).find(w => w.name === name);
        if (!w) throw new Error(n.type + ' has no widget ' + name);
        w.value = value;
      } }""", changes)


def queue(page) -> None:
    page.evaluate("() => window.app.queuePrompt(0, 1)")


def screenshot(page, path: str) -> None:
    page.evaluate("() => { const c = window.app.canvas; const b = window.app.graph.nodes.reduce((r, n) => ["
                  "Math.min(r[0], n.pos[0]), Math.min(r[1], n.pos[1] - 40), Math.max(r[2], n.pos[0] + n.size[0]),"
                  "Math.max(r[3], n.pos[1] + n.size[1])], [1e9, 1e9, -1e9, -1e9]);"
                  "c.ds.fitToBounds([b[0], b[1], b[2] - b[0], b[3] - b[1]]); c.setDirty(true, true); }")
    page.wait_for_timeout(500)
    page.locator("#graph-canvas").screenshot(path=path, type="jpeg", quality=80)
