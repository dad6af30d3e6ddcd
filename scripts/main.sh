#!/usr/bin/env bash
# The main job: builds or reuses the environments, then runs the first example workflow headless in a real
# ComfyUI (your COMFYUI_DIR, else the newest one found: 0.33.0 with ../shared, else 0.3.75) on a generated
# sample clip, writes foreground video + alpha frames to ./output/main_job/ and prints the alpha error
# against the exact ground truth.
#   MA2_WEIGHTS=/path/file (or --weights FILE)  use that weights file
#   MA2_COMFY_BASE=DIR (or --base DIR)          ComfyUI base folder (default ~/.cache/matanyone2-comfyui/base)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/activate_env.sh"
exec "$ENV_DIR/venv/bin/python" "$ROOT/scripts/run_main_job.py" "$@"
