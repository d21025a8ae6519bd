"""The documentation holds together: every relative link and image of README.md, docs/, models/README.md and
BENCHMARKS.md points at a file that exists; the README stays the first ten minutes (the two commands, install,
weights, a quickstart, links) and everything else lives in docs/."""
import glob
import os
import re

from conftest import ROOT

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _documents() -> list[str]:
    return [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "BENCHMARKS.md"),
            os.path.join(ROOT, "models", "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]


def test_every_relative_link_resolves():
    broken, seen = [], 0
    for doc in _documents():
        with open(doc, encoding="utf-8") as f:
            text = f.read()
        for target in LINK.findall(text):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            seen += 1
            path = os.path.normpath(os.path.join(os.path.dirname(doc), target.split("#")[0]))
            if not os.path.exists(path):
                broken.append(f"{os.path.relpath(doc, ROOT)}: {target}")
    assert seen > 20 and not broken, broken


def test_the_readme_is_the_first_ten_minutes_and_links_every_document():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert len(readme.splitlines()) <= 100
    assert "bash scripts/demo.sh" in readme and "bash scripts/test.sh" in readme  # the two commands
    linked = set(LINK.findall(readme))
    for doc in glob.glob(os.path.join(ROOT, "docs", "*.md")):
        assert f"docs/{os.path.basename(doc)}" in linked, os.path.basename(doc)
