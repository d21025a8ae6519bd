"""Writes example_workflows/*.json and their .jpg thumbnails by building each example graph in the real ComfyUI
frontend and saving what it serialises (the UI format its Save writes).

    python scripts/make_example_workflows.py http://127.0.0.1:8188 [NAME ...]

With NAMEs (e.g. clipinverter_whole_photo_edit), only those examples are rebuilt.

Needs a running ComfyUI with this pack installed, playwright (python) and /usr/bin/chromium.
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from example_specs import EXAMPLES  # noqa: E402
from frontend import build, frontend, screenshot  # noqa: E402
from PIL import Image  # noqa: E402

THUMB_WIDTH = 1200


def main(url: str, names: list[str] | None = None) -> None:
    unknown = set(names or []) - set(EXAMPLES)
    if unknown:
        sys.exit(f"no example named {', '.join(sorted(unknown))}; the examples: {', '.join(EXAMPLES)}")
    out = os.path.join(ROOT, "example_workflows")
    os.makedirs(out, exist_ok=True)
    with frontend(url, 3000, 1500) as page:  # large enough that the fitted graph renders its text
        for name, spec in EXAMPLES.items():
            if names and name not in names:
                continue
            wf = build(page, spec())
            with open(os.path.join(out, f"{name}.json"), "w") as f:
                json.dump(wf, f, indent=2)
                f.write("\n")
            thumb = os.path.join(out, f"{name}.jpg")
            page.wait_for_timeout(2000)  # the first-run template browser opens late, over the canvas
            page.keyboard.press("Escape")
            page.wait_for_timeout(500)
            screenshot(page, thumb)
            img = Image.open(thumb)
            img.resize((THUMB_WIDTH, img.height * THUMB_WIDTH // img.width), Image.LANCZOS).save(thumb, quality=85)
            print(f"wrote example_workflows/{name}.json and .jpg")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8188", sys.argv[2:])
