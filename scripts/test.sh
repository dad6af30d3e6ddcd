#!/usr/bin/env bash
# The test command: builds or reuses the environment, then runs ruff and the whole pytest suite
# (core unit tests, parity with the official code, real-ComfyUI host tests, browser tests).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/activate_env.sh"
"$ENV_DIR/venv/bin/ruff" check .
exec "$ENV_DIR/venv/bin/python" -m pytest "$@"
