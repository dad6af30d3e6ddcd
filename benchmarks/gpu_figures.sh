#!/usr/bin/env bash
# The GPU figures in one run (needs CUDA; the test venv's python): speed table against the official code at
# 512x288, 720p, 1080p and 4K in fp32 / bf16 / fp16, end to end included, then the fast modes' deviation.
#   bash benchmarks/gpu_figures.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-gpu-figures}
mkdir -p "$out"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python benchmarks/engine_speed.py --device cuda --frames 60 --warmup 10 --end-to-end \
    --precisions fp32 bf16 fp16 --impls ours fast official | tee "$out/speed.md"
python benchmarks/precision_deviation.py --device cuda --size 1080x1920 --frames 24 \
    --modes fp16 bf16 full full-bf16 | tee "$out/deviation.md"
