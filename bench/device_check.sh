#!/usr/bin/env bash
# Every CUDA path of kat once, on one GPU (and DDP/--fsdp on two when two are visible), in under 5 minutes on an
# H200: embed on CUDA; tokenizer; rm/sft/dpo/grpo on --device cuda (tiny models); two identical runs and a resumed
# run byte for byte; --dtype fp16 (gradient scaler) and fp32 (TF32); DPO's reference cache between CPU and GPU
# (recomputed, never reused across devices); eval rm and eval policy at two batch sizes; a tiny hf: Llama built
# here; bench_rollout.py --device cuda --dtype bf16; checkpoints loadable with no GPU visible. Peak GPU memory per
# step (nvidia-smi, all GPUs, CUDA context included) and the ops PyTorch warned have no deterministic CUDA kernel.
#
# Writes $OUT/device_check/device_check.json (OUT defaults to bench/out) and prints it; exit 0 when every check
# held. Nothing is downloaded. A step that would start after BUDGET_S seconds (default 285) is skipped, and says so.
#
#     bash bench/device_check.sh             # on a machine with CUDA
#     bash bench/device_check.sh --dry-run   # list every command it would run (any machine), exit 0
#     DEVICE=cpu bash bench/device_check.sh  # rehearse the script itself without a GPU (the CPU/GPU checks fail)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
OUT="${OUT:-$ROOT/bench/out}"
BUDGET_S="${BUDGET_S:-285}"
DEVICE="${DEVICE:-cuda}"
# Per-step time limits are sized for a GPU; a CPU rehearsal gets more room.
LIMIT_SCALE="${LIMIT_SCALE:-$([ "$DEVICE" = cuda ] && echo 1 || echo 6)}"
DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "Error: unknown argument ${1} (bash bench/device_check.sh [--dry-run])" >&2; exit 2 ;;
esac

WORK="$OUT/device_check"
WS="$WORK/ws"
LOGS="$WORK/logs"
CHECK=("$PYTHON" bench/device_check.py)
KAT=("$PYTHON" -m katcli -w "$WS")
STOP_AFTER=("$PYTHON" tests/train/torchrunkit.py)  # kat, interrupted (Ctrl-C) right after saving step N
TORCHRUN=("$PYTHON" -m torch.distributed.run --nproc_per_node=2 --master_addr=127.0.0.1 --master_port=29533)
export PYTHONPATH="$ROOT/src:$ROOT/tests:$ROOT/tests/model:$ROOT/tests/train${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONWARNINGS="default"  # keep PyTorch's "no deterministic implementation" warnings in the logs

# Runs of a few steps save only at their end (--save-every defaults to 250) unless a step passes --save-every.
CUDA_FLAGS=(--device "$DEVICE" --seed 0)
TINY=(--depth 2 --batch-size 16 --max-len 128 --lr 2e-3 --val-ratio 0.2 --eval-every 0 "${CUDA_FLAGS[@]}")
DPO=(--init sft/uniform --batch-size 16 --max-len 128 --lr 1e-3 --beta 0.1 --val-ratio 0.2 --eval-every 0 --seed 0)
GRPO=(--rm uniform --init sft/uniform --prompts-per-step 8 --group-size 4 --max-new-tokens 32 --max-len 128
      --lr 1e-3 --beta 0.04 --val-ratio 0.2 --eval-every 0 --eval-prompts 16 "${CUDA_FLAGS[@]}")
POLICY_EVAL=(--rm uniform --prompts 16 --samples 2 --max-new-tokens 32 --seed 0 --device "$DEVICE")

START=$SECONDS
MEM_PID=""

record() {  # name rc seconds note
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$WORK/steps.tsv"
}

mem_start() {
  MEM_PID=""
  if command -v nvidia-smi > /dev/null 2>&1; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$LOGS/$1.mem" 2> /dev/null &
    MEM_PID=$!
  fi
}

mem_stop() {
  if [ -n "$MEM_PID" ]; then
    kill "$MEM_PID" 2> /dev/null
    wait "$MEM_PID" 2> /dev/null
  fi
  MEM_PID=""
}

# run NAME LIMIT_S COMMAND…: run it (stdout/stderr to logs/NAME.out|err, at most LIMIT_S seconds) and record it.
# With EXPECT_FAIL=1 the step holds when the command fails (an interruption on purpose).
run() {
  local name=$1 limit=$2 rc t0
  shift 2
  if [ "$DRY" = 1 ]; then
    printf '%-28s %s\n' "$name" "$(printf '%q ' "$@")"
    return 0
  fi
  if [ $((SECONDS - START)) -gt "$BUDGET_S" ]; then
    record "$name" skipped 0 "time budget of ${BUDGET_S}s spent"
    return 1
  fi
  t0=$SECONDS
  mem_start "$name"
  timeout $((limit * LIMIT_SCALE)) "$@" > "$LOGS/$name.out" 2> "$LOGS/$name.err"
  rc=$?
  mem_stop
  if [ "${EXPECT_FAIL:-0}" = 1 ]; then
    if [ "$rc" -ne 0 ]; then rc=0; else rc=1; fi
  fi
  record "$name" "$rc" $((SECONDS - t0)) ""
  return "$rc"
}

skip() {  # name note
  if [ "$DRY" = 1 ]; then
    printf '%-28s (skipped: %s)\n' "$1" "$2"
  else
    record "$1" skipped 0 "$2"
  fi
}

if [ "$DRY" = 0 ]; then
  if [ "$DEVICE" = cuda ] && ! "$PYTHON" -c 'import torch, transformers; assert torch.cuda.is_available()' 2> /dev/null; then
    echo "Error: bench/device_check.sh needs torch with a CUDA device and transformers (python: $PYTHON)" >&2
    echo "Hint: run it on a GPU machine, or pass --dry-run to list its commands" >&2
    exit 1
  fi
  rm -rf "$WORK"
  mkdir -p "$LOGS"
  : > "$WORK/steps.tsv"
fi

# -- the machine and the data -------------------------------------------------------------------------------------
run env 60 "${CHECK[@]}" env
run pairs 60 "${KAT[@]}" pairs download --from sample --seed 0
run prefixes 60 "${KAT[@]}" prefixes
run embed_cuda 120 "${KAT[@]}" embed --device "$DEVICE"
run tokenizer 120 "${KAT[@]}" train tokenizer --vocab-size 2048

# -- the four objectives on CUDA, then the same run twice and a resumed run, byte for byte ----------------------
run train_rm 120 "${KAT[@]}" train rm --name uniform --max-steps 20 "${TINY[@]}"
run train_sft 120 "${KAT[@]}" train sft --name uniform --max-steps 20 "${TINY[@]}"
run train_sft_again 120 "${KAT[@]}" train sft --name uniform-again --max-steps 20 "${TINY[@]}"
run check_same_twice 30 "${CHECK[@]}" same-files "$WS/sft_checkpoints/uniform" "$WS/sft_checkpoints/uniform-again"
run train_sft_full 120 "${KAT[@]}" train sft --name full --max-steps 8 "${TINY[@]}" --save-every 4
EXPECT_FAIL=1 run train_sft_interrupted 120 "${STOP_AFTER[@]}" 4 -w "$WS" train sft --name resumed --max-steps 8 \
  "${TINY[@]}" --save-every 4
run train_sft_resume 120 "${KAT[@]}" train sft --name resumed --max-steps 8 "${TINY[@]}" --save-every 4 --resume
run check_resume_sft 30 "${CHECK[@]}" same-files "$WS/sft_checkpoints/full" "$WS/sft_checkpoints/resumed"
run train_sft_fp16 120 "${KAT[@]}" train sft --name fp16 --max-steps 10 "${TINY[@]}" --dtype fp16
run train_sft_fp32_tf32 120 "${KAT[@]}" train sft --name fp32 --max-steps 10 "${TINY[@]}" --dtype fp32
run train_dpo 120 "${KAT[@]}" train dpo --name uniform "${DPO[@]}" --max-steps 10 --device "$DEVICE"
run train_grpo 150 "${KAT[@]}" train grpo --name uniform --max-steps 4 "${GRPO[@]}"
run train_grpo_full 150 "${KAT[@]}" train grpo --name g-full --max-steps 4 "${GRPO[@]}" --save-every 2
EXPECT_FAIL=1 run train_grpo_interrupted 150 "${STOP_AFTER[@]}" 2 -w "$WS" train grpo --name g-resumed \
  --max-steps 4 "${GRPO[@]}" --save-every 2
run train_grpo_resume 150 "${KAT[@]}" train grpo --name g-resumed --max-steps 4 "${GRPO[@]}" --save-every 2 --resume
run check_resume_grpo 30 "${CHECK[@]}" same-files "$WS/grpo_checkpoints/g-full" "$WS/grpo_checkpoints/g-resumed"
run check_cpu_load 60 "${CHECK[@]}" cpu-load "$WS/dpo_checkpoints/uniform"

# -- DPO's reference cache: a CPU run must not reuse the GPU's numbers; a second GPU run reuses them --------------
run train_dpo_cpu 180 "${KAT[@]}" train dpo --name cpu-ref "${DPO[@]}" --max-steps 2 --device cpu --threads 8
run check_cache_cpu 30 "${CHECK[@]}" cache-state "$WS" dpo/cpu-ref computed
run train_dpo_gpu_again 120 "${KAT[@]}" train dpo --name gpu-again "${DPO[@]}" --max-steps 2 --device "$DEVICE"
run check_cache_gpu 30 "${CHECK[@]}" cache-state "$WS" dpo/gpu-again reused

# -- evaluation at two batch sizes (bf16 replies may differ: the summary says how many are equal) -----------------
run eval_rm_b8 120 "${KAT[@]}" eval rm uniform dpo/uniform --device "$DEVICE" --batch-size 8 --json
run eval_rm_b32 120 "${KAT[@]}" eval rm uniform dpo/uniform --device "$DEVICE" --batch-size 32 --json
run check_eval_rm_batches 30 "${CHECK[@]}" same-eval-rm "$LOGS/eval_rm_b8.out" "$LOGS/eval_rm_b32.out"
run eval_rm_cpu_of_gpu_dpo 180 "${KAT[@]}" eval rm dpo/uniform --device cpu --threads 8 --json
run check_eval_rm_cpu_recomputes 10 grep -l "recomputed the held-out reference log-probs" \
  "$LOGS/eval_rm_cpu_of_gpu_dpo.out" "$LOGS/eval_rm_cpu_of_gpu_dpo.err"
run eval_policy_b4 150 "${KAT[@]}" eval policy sft/uniform dpo/uniform "${POLICY_EVAL[@]}" --batch-size 4
run keep_eval_policy_b4 30 cp -r "$WS/eval/policy" "$WORK/eval_policy_b4"
run eval_policy_b16 150 "${KAT[@]}" eval policy sft/uniform dpo/uniform "${POLICY_EVAL[@]}" --batch-size 16
run check_replies_batches 30 "${CHECK[@]}" replies "$WORK/eval_policy_b4/sft-uniform/generations.jsonl" \
  "$WS/eval/policy/sft-uniform/generations.jsonl"

# -- a Hugging Face backbone, and the rollout benchmark ------------------------------------------------------------
run hf_tiny_llama 120 "${CHECK[@]}" tiny-llama "$WS" "$WORK/tiny-llama"
run train_sft_hf 150 "${KAT[@]}" train sft --name hf --init "hf:$WORK/tiny-llama" --max-steps 4 --batch-size 8 \
  --max-len 128 --val-ratio 0.2 --eval-every 0 "${CUDA_FLAGS[@]}"
run eval_policy_hf 150 "${KAT[@]}" eval policy sft/hf --rm uniform --prompts 8 --samples 2 --max-new-tokens 16 \
  --device "$DEVICE"
run bench_rollout 150 "$PYTHON" bench/bench_rollout.py --device "$DEVICE" --dtype bf16 --threads 4 --repeats 1

# -- two processes: DDP and --fsdp (only with two GPUs) -----------------------------------------------------------
GPUS=2
if [ "$DRY" = 0 ]; then
  GPUS=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())' 2> /dev/null || echo 0)
fi
if [ "$GPUS" -ge 2 ]; then
  run train_sft_ddp 180 "${TORCHRUN[@]}" -m katcli -w "$WS" train sft --name ddp --max-steps 10 "${TINY[@]}"
  run train_sft_fsdp 180 "${TORCHRUN[@]}" -m katcli -w "$WS" train sft --name fsdp --max-steps 10 "${TINY[@]}" \
    --fsdp
  run train_dpo_fsdp 180 "${TORCHRUN[@]}" -m katcli -w "$WS" train dpo --name fsdp "${DPO[@]}" --max-steps 2 \
    --device "$DEVICE" --fsdp
  run train_grpo_fsdp 180 "${TORCHRUN[@]}" -m katcli -w "$WS" train grpo --name fsdp --max-steps 2 "${GRPO[@]}" \
    --fsdp
else
  for step in train_sft_ddp train_sft_fsdp train_dpo_fsdp train_grpo_fsdp; do
    skip "$step" "needs 2 GPUs, $GPUS visible"
  done
fi

if [ "$DRY" = 1 ]; then
  printf '%-28s %s\n' summary "$(printf '%q ' "${CHECK[@]}" summary "$WORK")"
  exit 0
fi
"${CHECK[@]}" summary "$WORK"
