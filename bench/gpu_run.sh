#!/usr/bin/env bash
# The GPU session in ONE device call (~9 minutes) around the product: `gdfr bench` (a matrix over
# precision, data format, memory format, compile, and the native twin), then the real `gdfr train
# recipes/cifar10.toml` on the packed CIFAR-10 with the longest whole schedule that fits.
# Every measurement is one flushed line under $OUT. No TensorFlow is needed (none is on the device).
#
# Device (run from the repo root; carry bench/wheels and bench/data; the copied tree may have no .git,
# so pass the version, e.g. GDFR_COMMIT="uncommitted changes on top of $(git rev-parse --short HEAD)"):
#   GDFR_COMMIT=... bash bench/gpu_run.sh     # timeout_s 600; the script itself stops by GDFR_BUDGET_S (540)
# CPU check of the very same script at tiny sizes, in a venv WITHOUT TensorFlow (no wheels installed):
#   PYTHON=/work/venv-notf/bin/python OUT=/tmp/gdfr-smoke bash bench/gpu_run.sh --smoke
#
# Needs: bench/data/cifar10.npz (`gdfr pack /path/cifar10-jpeg.zip bench/data/cifar10.npz
# --dataset cifar10`), and on the device bench/wheels/ (keras, namex, optree for cp312:
# `pip download --no-deps --python-version 3.12 --only-binary=:all: -d bench/wheels keras namex optree`).
# Files written to $OUT (at most 8 come back): log.txt, env.txt, bench.jsonl, train.jsonl (the run's
# events.jsonl), eval.json.
set -u
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
OUT=${OUT:-/tmp/gdfr-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
BUDGET=${GDFR_BUDGET_S:-540}        # whole script, seconds
BENCH_BUDGET=${GDFR_BENCH_BUDGET_S:-250}
DATA=${GDFR_DATA:-bench/data/cifar10.npz}
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
  bench 300 $G $S --precision mixed_bfloat16 --data-format channels_first --per-variable-sgd
  GDFR_FUSED_BN=0 bench 300 $G $S --precision float32 --data-format channels_first
  bench 300 $G --variant net1 --batch 4 --steps 1 --warmup 1 --threads 1 --precision mixed_bfloat16
  bench 300 bench/torch_resnet34.py --batch 4 --steps 1 --warmup 1 --width 8 --no-compile --amp bf16 --no-channels-last
  bench 300 $G $S --data "$DATA" --data-limit 512
  bench 300 $G --variant tiny --batch 16 --steps 1 --warmup 1 --threads 1 --against native --rounds 2
  # The compiled step's path (trace, dynamo, counters) without inductor's minutes of C++ compile.
  GDFR_TORCH_COMPILER=eager bench 300 $G $S --precision float32 --jit
else
  # In priority order (the last ones are skipped first when the budget runs out).
  B="--batch 128 --steps 30 --warmup 5"
  CF="--precision mixed_bfloat16 --data-format channels_first"
  bench 100 $G --variant gdfrnet $B $CF
  bench 100 $G --variant gdfrnet $B $CF --memory-format channels_last
  bench 100 $G --variant gdfrnet $B $CF --memory-format channels_last --per-variable-sgd
  bench 120 $G --variant gdfrnet $B $CF --memory-format channels_last --jit  # its warm-up decides train.jit_compile
  bench 100 $G --variant gdfrnet $B --precision float32 --data-format channels_last
  bench 80 $G --variant net2 $B $CF --memory-format channels_last
  bench 150 bench/torch_resnet34.py --stem 3x3 --batch 128 --steps 50 --compile --amp bf16 --channels-last
  bench 80 $G --variant net1 $B $CF --memory-format channels_last
  bench 60 bench/torch_resnet34.py --stem 3x3 --batch 128 --steps 30 --no-compile --amp bf16 --channels-last
  GDFR_FUSED_BN=0 bench 100 $G --variant gdfrnet $B $CF --memory-format channels_last
  bench 60 $G --variant gdfrnet --batch 128 --steps 10 --warmup 3 $CF --data "$DATA" --data-limit 0
  bench 120 $G --variant gdfrnet --batch 128 --steps 10 --warmup 3 --data-format channels_first --against native --rounds 4
fi
log "bench done"

# 3. Training: the product itself, `gdfr train recipes/cifar10.toml` on the packed CIFAR-10 (device
#    input pipeline, no TensorFlow), with the longest whole schedule that fits what is left (minus
#    a margin for the final evaluation and the copy back): E epochs from the fastest matching bench
#    line's measured epoch time, the paper's milestones scaled to E by the recipe.
LEFT=$(( BUDGET - $(elapsed) - 40 ))
if [ "$SMOKE" = 1 ]; then
  VARIANT=tiny; TRAIN_ARGS="--variant tiny --limit-train 512 --limit-test 256 --batch-size 64"; LEFT=240
else
  VARIANT=gdfrnet; TRAIN_ARGS="--set train.precision=mixed_bfloat16"
fi
# The plan: "E JIT", the longest whole schedule that fits, and whether the compiled step
# (train.jit_compile) is used: only when its measured warm-up (the bench's --jit line, doubled:
# `gdfr train` compiles a train and a test graph) plus E compiled epochs beats E eager ones.
read -r EPOCHS JIT <<< "$("$PY" - "$OUT/bench.jsonl" "$VARIANT" "$LEFT" "$SMOKE" <<'PLAN'
import json, math, sys
path, variant, left, smoke = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"
try:
    lines = [json.loads(l) for l in open(path) if l.startswith("{")]
except OSError:
    lines = []
rates = [l for l in lines if l.get("variant") == variant and l.get("train_img_s") and "epoch_s" in l]
def epochs(line, warmup=0.0):  # 15 %: per-step monitor, validation
    return math.floor((left - warmup) / (1.15 * line["epoch_s"]))
eager = [l for l in rates if not l.get("jit") and l.get("data_format") == "channels_last"] or \
        [l for l in rates if not l.get("jit")]
jit = [l for l in rates if l.get("jit") and not l.get("recompiles_after_warmup")]
best_eager = max((epochs(l) for l in eager), default=1)
best_jit = max((epochs(l, 2 * l["warmup_s"]) for l in jit), default=0)
if smoke:
    print(2, 1 if best_jit > 2 else 0)  # the CPU smoke trains 2 epochs of 512 images
else:
    print(max(1, best_eager, best_jit), 1 if best_jit > best_eager else 0)
PLAN
)"
[ "$JIT" = 1 ] && TRAIN_ARGS="$TRAIN_ARGS --set train.jit_compile=true"
log "plan: $EPOCHS epochs, compiled step: $([ "$JIT" = 1 ] && echo yes || echo no) (from bench.jsonl)"
if [ "$LEFT" -gt 30 ]; then
  log "train: gdfr train recipes/cifar10.toml $TRAIN_ARGS --epochs $EPOCHS (budget ${LEFT}s)"
  RUN=${GDFR_RUN_DIR:-/tmp/gdfr-run}  # outside $OUT: checkpoints and model.keras are too big to bring back
  rm -rf "$RUN"
  # Each event reaches $OUT as it is written (every 5 s), so a call cut short still brings them back.
  ( while sleep 5; do cp "$RUN/events.jsonl" "$OUT/train.jsonl" 2>/dev/null; done ) &
  COPIER=$!
  timeout $(( LEFT + 30 )) "$PY" -m keras_gdfr.cli train recipes/cifar10.toml $TRAIN_ARGS --data "$DATA" \
    --epochs "$EPOCHS" --run-dir "$RUN" >> "$OUT/log.txt" 2>&1 || log "train FAILED or timed out"
  kill "$COPIER" 2>/dev/null
  cp "$RUN/events.jsonl" "$OUT/train.jsonl" 2>/dev/null
  cp "$RUN/eval.json" "$OUT/eval.json" 2>/dev/null
else
  log "train skipped: only ${LEFT}s left"
fi
log "all done"
grep -E '"(run_start|epoch_end|run_end)"' "$OUT/train.jsonl" 2>/dev/null | cut -c1-300 | tail -n 4
