"""Training of both CLIPInverter stages (no ComfyUI import)."""
