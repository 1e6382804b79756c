#!/usr/bin/env bash
# The GPU session of issue #5 in ONE device call (~9 minutes): benchmark matrix, then the
# longest whole CIFAR-10 schedule that fits. Every measurement is one flushed line under $OUT.
#
# Device (run from the repo root; carry bench/wheels and bench/data; the copied tree may have no .git,
# so pass the version, e.g. GDFR_COMMIT="uncommitted changes on top of $(git rev-parse --short HEAD)"):
#   GDFR_COMMIT=... bash bench/gpu_run.sh     # timeout_s 600; the script itself stops by GDFR_BUDGET_S (540)
# CPU check of the very same script at tiny sizes (no wheels installed, venv python):
#   PYTHON=/work/venv/bin/python OUT=/tmp/gdfr-smoke bash bench/gpu_run.sh --smoke
#
# Needs: bench/data/cifar10.tfrecord.gz (`gdfr pack /path/cifar10-jpeg.zip bench/data/cifar10.tfrecord.gz
# --dataset cifar10`), and on the device bench/wheels/ (keras, namex, optree for cp312:
# `pip download --no-deps --python-version 3.12 --only-binary=:all: -d bench/wheels keras namex optree`).
# Files written to $OUT (at most 8 come back): log.txt, env.txt, bench.jsonl, train.jsonl.
set -u
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
OUT=${OUT:-/tmp/gdfr-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
BUDGET=${GDFR_BUDGET_S:-540}        # whole script, seconds
BENCH_BUDGET=${GDFR_BENCH_BUDGET_S:-250}
DATA=${GDFR_DATA:-bench/data/cifar10.tfrecord.gz}
START=$(date +%s)
export KERAS_BACKEND=torch PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
elapsed() { echo $(( $(date +%s) - START )); }
log() { echo "[$(elapsed)s] $*" | tee -a "$OUT/log.txt"; }

# 1. Environment and the carried wheels (the device image has torch, no keras, no tensorflow).
{
  date -u; uname -a; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null
  "$PY" -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  echo "commit: ${GDFR_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
} > "$OUT/env.txt" 2>&1
if [ "$SMOKE" = 0 ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site bench/wheels/*.whl >> "$OUT/log.txt" 2>&1 \
    || log "wheel install FAILED"
  export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
"$PY" -c "import keras, torch; print('keras', keras.__version__, keras.backend.backend())" >> "$OUT/env.txt" 2>&1 \
  || { log "keras does not import: see env.txt"; cat "$OUT/env.txt"; exit 1; }
log "setup done"

# 2. Benchmark matrix: one process per measurement, each under its own timeout; skipped once
#    the bench budget is spent. Each line of bench.jsonl is one JSON object (or an error line).
bench() {  # bench TIMEOUT ARGS...
  local limit=$1; shift
  if [ "$(elapsed)" -ge "$BENCH_BUDGET" ]; then log "skip (bench budget spent): $*"; return; fi
  log "run: $*"
  local line
  line=$(timeout "$limit" "$PY" "$@" 2>>"$OUT/log.txt" | tail -n 1; exit "${PIPESTATUS[0]}")
  local rc=$?  # 124: timed out
  if [ -n "$line" ] && [ "${line:0:1}" = "{" ]; then echo "$line" >> "$OUT/bench.jsonl"; log "ok: ${line:0:240}"
  else echo "{\"error\": \"rc $rc or no result\", \"args\": \"$*\"}" >> "$OUT/bench.jsonl"; log "FAILED (rc $rc): $*"; fi
}
G="-m keras_gdfr.cli bench --json"
if [ "$SMOKE" = 1 ]; then
  S="--variant tiny --batch 16 --steps 2 --warmup 1 --threads 1"
  bench 300 $G $S --precision float32 --data-format channels_last
  bench 300 $G $S --precision mixed_bfloat16 --data-format channels_first
  bench 300 $G $S --precision mixed_bfloat16 --data-format channels_first --foreach-sgd
  GDFR_FUSED_BN=0 bench 300 $G $S --precision float32 --data-format channels_first
  bench 300 $G --variant net1 --batch 4 --steps 1 --warmup 1 --threads 1 --precision mixed_bfloat16
  bench 300 bench/torch_resnet34.py --batch 4 --steps 1 --warmup 1 --width 8 --no-compile --amp bf16 --no-channels-last
  bench 300 $G $S --data "$DATA" --data-limit 512
else
  # In priority order (the last ones are skipped first when the budget runs out).
  B="--batch 128 --steps 30 --warmup 5"
  CF="--precision mixed_bfloat16 --data-format channels_first"
  bench 100 $G --variant gdfrnet $B $CF
  bench 100 $G --variant gdfrnet $B $CF --memory-format channels_last
  bench 100 $G --variant gdfrnet $B $CF --memory-format channels_last --foreach-sgd
  bench 100 $G --variant gdfrnet $B --precision float32 --data-format channels_last
  bench 80 $G --variant net2 $B $CF --memory-format channels_last
  bench 150 bench/torch_resnet34.py --stem 3x3 --batch 128 --steps 50 --compile --amp bf16 --channels-last
  bench 80 $G --variant net1 $B $CF --memory-format channels_last
  bench 60 bench/torch_resnet34.py --stem 3x3 --batch 128 --steps 30 --no-compile --amp bf16 --channels-last
  GDFR_FUSED_BN=0 bench 100 $G --variant gdfrnet $B $CF --memory-format channels_last
  bench 60 $G --variant gdfrnet --batch 128 --steps 10 --warmup 3 $CF --data "$DATA" --data-limit 0
  bench 120 $G --variant gdfrnet $B $CF --memory-format channels_last --jit
fi
log "bench done"

# 3. Training: the longest whole schedule that fits what is left (minus a margin for the last
#    evaluation and the copy back). The fastest gdfrnet bench settings are used.
LEFT=$(( BUDGET - $(elapsed) - 25 ))
if [ "$SMOKE" = 1 ]; then
  log "train (smoke): tiny, at most 4 epochs in 60 s"
  timeout 600 "$PY" bench/cifar_schedule.py --smoke --data "$DATA" --out "$OUT" --budget-s 60 \
    --auto-from "$OUT/bench.jsonl" >> "$OUT/log.txt" 2>&1 || log "train FAILED"
elif [ "$LEFT" -gt 60 ]; then
  log "train: gdfrnet, budget ${LEFT}s"
  timeout $(( LEFT + 20 )) "$PY" bench/cifar_schedule.py --data "$DATA" --out "$OUT" --budget-s "$LEFT" \
    --auto-from "$OUT/bench.jsonl" >> "$OUT/log.txt" 2>&1 || log "train FAILED or timed out"
else
  log "train skipped: only ${LEFT}s left"
fi
log "all done"
tail -n 3 "$OUT/train.jsonl" 2>/dev/null
