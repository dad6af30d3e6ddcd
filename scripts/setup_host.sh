#!/usr/bin/env bash
# Builds (or reuses) a ComfyUI host for the tests from a source tarball or a source tree:
#   setup_host.sh ComfyUI-0.33.0.tar.gz    extracts it to $MA2_CACHE/host-<version>-<key>/ComfyUI
#   setup_host.sh /path/to/ComfyUI         uses that tree as it is (never modified)
# and a venv with the tree's own requirements.txt (so its own frontend, templates and docs pins), with the
# torch lines replaced by requirements/host.txt and torchaudio from requirements/host-nodeps.txt when the tree
# asks for it. The key is a hash of those requirements, so a changed pin builds a fresh venv.
# Prints "<ComfyUI dir><TAB><python>" on its last line.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${MA2_CACHE:-$HOME/.cache/matanyone2-comfyui}
LAYOUT_VERSION=1
PY=${PYTHON:-python3}
SOURCE=${1:?usage: setup_host.sh TARBALL_OR_COMFYUI_DIR}
mkdir -p "$CACHE"

if [ -f "$SOURCE" ]; then
  exec 8>"$CACHE/.tree.lock"
  flock 8
  TAR_KEY=$(sha256sum "$SOURCE" | cut -c1-12)
  TREE_HOME=$CACHE/tree-$TAR_KEY
  if [ ! -f "$TREE_HOME/.complete" ]; then
    echo "setup: extracting $SOURCE" >&2
    rm -rf "$TREE_HOME" && mkdir -p "$TREE_HOME"
    tar -xzf "$SOURCE" -C "$TREE_HOME"
    [ -f "$TREE_HOME/ComfyUI/main.py" ] || { echo "setup: $SOURCE holds no ComfyUI/main.py" >&2; exit 1; }
    rm -f "$TREE_HOME/ComfyUI/extra_model_paths.yaml"
    touch "$TREE_HOME/.complete"
  fi
  COMFY=$TREE_HOME/ComfyUI
else
  COMFY=$(cd "$SOURCE" && pwd)
  [ -f "$COMFY/main.py" ] || { echo "setup: $SOURCE is not a ComfyUI tree (no main.py)" >&2; exit 1; }
fi
[ -f "$COMFY/requirements.txt" ] || { echo "setup: $COMFY has no requirements.txt" >&2; exit 1; }

# The tree's requirements without its torch lines, then our pins.
REQS=$(grep -v -E '^\s*(torch|torchvision|torchaudio)\s*([<>=!~;#].*)?$' "$COMFY/requirements.txt"; cat "$ROOT/requirements/host.txt")
NEEDS_AUDIO=$(grep -c -E '^\s*torchaudio\b' "$COMFY/requirements.txt" || true)
KEY=$( (echo "$REQS"; echo "audio=$NEEDS_AUDIO"; cat "$ROOT/requirements/host-nodeps.txt" "$ROOT/requirements/sam2.txt"
        echo "layout=$LAYOUT_VERSION") | sha256sum | cut -c1-16)
VENV_HOME=$CACHE/hostenv-$KEY
exec 9>"$CACHE/.hostenv-$KEY.lock"
flock 9
if [ ! -f "$VENV_HOME/.complete" ]; then
  echo "setup: building the ComfyUI host venv $VENV_HOME for $COMFY" >&2
  rm -rf "$VENV_HOME" && mkdir -p "$VENV_HOME"
  "$PY" -m venv "$VENV_HOME/venv"
  PIP="$VENV_HOME/venv/bin/python -m pip"
  $PIP install -q --upgrade pip >&2
  echo "$REQS" > "$VENV_HOME/requirements.txt"
  $PIP install -q -r "$VENV_HOME/requirements.txt" >&2
  if [ "$NEEDS_AUDIO" != 0 ]; then
    $PIP install -q --no-deps -r "$ROOT/requirements/host-nodeps.txt" >&2
  fi
  # The optional SAM 2 nodes' dependency, the way users install it (no CUDA extension, no second torch).
  SAM2_BUILD_CUDA=0 $PIP install -q --no-build-isolation -r "$ROOT/requirements/sam2.txt" >&2
  touch "$VENV_HOME/.complete"
fi
printf '%s\t%s\n' "$COMFY" "$VENV_HOME/venv/bin/python"
