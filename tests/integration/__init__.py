"""Integration tests: a real ComfyUI server and its frontend (COMFYUI_PATH)."""
