#!/usr/bin/env bash
# The test command: builds or reuses the environment, then runs ruff and the whole pytest suite
# (core unit tests, parity with the official code, real-ComfyUI host tests, browser tests).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENV_DIR=$(bash "$ROOT/scripts/setup_env.sh" | tail -n 1)
export MA2_ENV_DIR=$ENV_DIR
export COMFYUI_DIR=${COMFYUI_DIR:-$ENV_DIR/ComfyUI}
cd "$ROOT"
"$ENV_DIR/venv/bin/ruff" check .
exec "$ENV_DIR/venv/bin/python" -m pytest "$@"
