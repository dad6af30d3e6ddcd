# Sourced by the project's commands: builds or reuses the environments, exports where they are, enters the repo.
#   MA2_ENV_DIR   the test venv (put first on PATH) + the ComfyUI 0.3.75 tree (scripts/setup_env.sh)
#   MA2_HOSTS     the ComfyUI hosts the host tests and the main job use, one "<ComfyUI dir><TAB><python>" per
#                 line: 0.3.75 always; every ComfyUI-*.tar.gz in ../shared/comfyui (or $MA2_COMFYUI_TARBALLS);
#                 and $COMFYUI_DIR, a tree of your own (run by $COMFYUI_PYTHON, else a venv built from its
#                 requirements.txt). A MA2_HOSTS set beforehand is kept as it is.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENV_DIR=$(bash "$ROOT/scripts/setup_env.sh" | tail -n 1)
export MA2_ENV_DIR=$ENV_DIR
export PATH="$ENV_DIR/venv/bin:$PATH"  # `python`, `pytest`, `ruff` are the test venv's
if [ -z "${MA2_HOSTS:-}" ]; then
  MA2_HOSTS=$(printf '%s\t%s' "$ENV_DIR/ComfyUI" "$ENV_DIR/venv/bin/python")
  shopt -s nullglob
  for tarball in ${MA2_COMFYUI_TARBALLS:-"$ROOT"/../shared/comfyui/ComfyUI-*.tar.gz}; do
    MA2_HOSTS+=$'\n'$(bash "$ROOT/scripts/setup_host.sh" "$tarball" | tail -n 1)
  done
  shopt -u nullglob
  if [ -n "${COMFYUI_DIR:-}" ]; then
    if [ -n "${COMFYUI_PYTHON:-}" ]; then
      MA2_HOSTS+=$'\n'$(printf '%s\t%s' "$COMFYUI_DIR" "$COMFYUI_PYTHON")
    else
      MA2_HOSTS+=$'\n'$(bash "$ROOT/scripts/setup_host.sh" "$COMFYUI_DIR" | tail -n 1)
    fi
  fi
fi
export MA2_HOSTS
cd "$ROOT"
