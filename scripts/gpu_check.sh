#!/usr/bin/env bash
# The GPU check for a lent GPU machine (the `device` tool), under 10 minutes on one GPU:
# HF generation and SFT steps of a ~100M Llama, then one BC and one GRPO iteration of the real
# flow on a Qwen2-shaped ~0.36B chat model through vLLM (tokens/s, stage times, peak memory
# per stage, whether vLLM's memory was handed over before training). All models are built
# locally. Prints tables, writes OUT_DIR/gpu_check.json.
#   scripts/gpu_check.sh [OUT_DIR] [--dry-run]   (OUT_DIR defaults to $OUT, else /tmp/gpu_check)
# --dry-run: no GPU needed, the loop part on a tiny model (what CI-side checking runs).
# Uses .venv if it has a CUDA torch (`make vllm-gpu`), else the machine's python3 (which then
# needs torch with CUDA and the project's dependencies: the GPU machine has no network).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/gpu_check}"
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then out="$1"; shift; fi
py=python3
if [ -x .venv/bin/python ] && { [ "${1:-}" = "--dry-run" ] || .venv/bin/python -c 'import torch,sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null; }; then
  py=.venv/bin/python
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
PYTHONPATH=. exec "$py" benchmarks/gpu_check.py "$out" "$@"
