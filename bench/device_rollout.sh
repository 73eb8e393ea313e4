#!/usr/bin/env bash
# bench_rollout.py on one CUDA GPU, bf16: the default rollout batch (depth 4, 8 prompts × 4, 128 new tokens),
# then a GRPO-sized one (depth 12, 32 prompts × 8, 256 new tokens). One JSON object per line on stdout and in
# "$OUT/bench_rollout_cuda.jsonl" (OUT defaults to bench/out). Needs torch with CUDA and transformers; nothing is
# downloaded. About 2 minutes on an H100-class GPU.
#
#     PYTHON=.venv/bin/python bash bench/device_rollout.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
OUT="${OUT:-bench/out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" -c 'import torch, transformers; assert torch.cuda.is_available(), "no CUDA device"' || {
  echo "Error: bench/device_rollout.sh needs torch with a CUDA device and transformers" >&2; exit 1; }
"$PYTHON" -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))' >&2
log="$OUT/bench_rollout_cuda.jsonl"
: > "$log"
"$PYTHON" bench/bench_rollout.py --device cuda --dtype bf16 --threads 4 --repeats 3 | tee -a "$log"
"$PYTHON" bench/bench_rollout.py --device cuda --dtype bf16 --threads 4 --repeats 3 \
  --depth 12 --prompts 32 --group-size 8 --prompt-len 256 --new-tokens 256 | tee -a "$log"
