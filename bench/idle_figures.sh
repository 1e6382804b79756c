#!/usr/bin/env bash
# Issue 21's idle figures in one command (docs/performance.md "Idle figures"): the Keras/native
# eager ratio three times (interleaved inside each run), at batch 128, compiled, and the full
# network's inductor compile cold and warm. Run it from the repo root with NOTHING else heavy
# on the machine; each figure is one JSON line under $OUT as soon as it exists.
#   OUT=/tmp/idle bash bench/idle_figures.sh
#   BEFORE_TREE=/path/to/a/worktree/at/an/older/commit ...   # also time that tree after each ratio run
set -u
export KERAS_BACKEND=torch PYTHONPATH="$PWD" OMP_NUM_THREADS=1
PY=${PYTHON:-python}
OUT=${OUT:-/tmp/gdfr-idle}; mkdir -p "$OUT"
log() { echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) $*" | tee -a "$OUT/log.txt"; }
BENCH="$PY -m keras_gdfr.cli bench --variant tiny --steps 2 --warmup 1 --threads 1 --against native --json"
log "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
for i in 1 2 3; do
  log "eager ratio b64 run $i"; timeout 600 $BENCH --batch 64 --rounds 10 >> "$OUT/ratio-b64.jsonl"
  if [ -n "${BEFORE_TREE:-}" ]; then
    log "eager ratio b64 run $i ($BEFORE_TREE)"
    (cd "$BEFORE_TREE" && PYTHONPATH="$BEFORE_TREE" timeout 600 $BENCH --batch 64 --rounds 10) >> "$OUT/ratio-b64-before.jsonl"
  fi
done
log "eager ratio b128"; timeout 600 $BENCH --batch 128 --rounds 6 >> "$OUT/ratio-b128.jsonl"
log "compiled ratio b64"; timeout 1200 $BENCH --batch 64 --rounds 6 --jit >> "$OUT/ratio-jit.jsonl"
export TORCHINDUCTOR_CACHE_DIR=$(mktemp -d /tmp/inductor-cold-XXXX)
log "compile cold ($TORCHINDUCTOR_CACHE_DIR)"
GDFR_TORCH_COMPILER=inductor timeout 1200 $PY bench/compile_cost.py gdfrnet 128 float32 >> "$OUT/compile.jsonl"
log "compile warm"; GDFR_TORCH_COMPILER=inductor timeout 900 $PY bench/compile_cost.py gdfrnet 128 float32 >> "$OUT/compile.jsonl"
log "done"
