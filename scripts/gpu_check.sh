#!/usr/bin/env bash
# The GPU check for a lent GPU machine (the `device` tool): HF generation on CUDA and SFT
# steps of a ~100M Llama built locally; prints a table, writes OUT_DIR/gpu_check.json.
#   scripts/gpu_check.sh [OUT_DIR]        (OUT_DIR defaults to $OUT, else /tmp/gpu_check)
# Uses .venv if it has a CUDA torch, else the machine's python3 (which needs torch with CUDA,
# transformers, trl, datasets, tokenizers, polars: the GPU machine has no network).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp/gpu_check}}"
py=python3
if [ -x .venv/bin/python ] && .venv/bin/python -c 'import torch,sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
  py=.venv/bin/python
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
PYTHONPATH=. exec "$py" benchmarks/gpu_check.py "$out"
