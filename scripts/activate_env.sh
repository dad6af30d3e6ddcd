# Sourced by the project's commands: builds or reuses the environment, exports where it is, enters the repo.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENV_DIR=$(bash "$ROOT/scripts/setup_env.sh" | tail -n 1)
export MA2_ENV_DIR=$ENV_DIR
export COMFYUI_DIR=${COMFYUI_DIR:-$ENV_DIR/ComfyUI}
cd "$ROOT"
