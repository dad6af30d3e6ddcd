"""Tests against a real ComfyUI server and its web frontend (a package, so its conftest keeps its own name)."""
