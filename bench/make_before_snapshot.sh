#!/usr/bin/env bash
# Snapshot keras_gdfr at a commit as the package `keras_gdfr_before` (for bench/cpu_ab.py's `before` configs).
# Usage: bench/make_before_snapshot.sh [COMMIT] [DEST]   (defaults: HEAD, /tmp/gdfr-before)
set -euo pipefail
commit=${1:-HEAD}
dest=${2:-/tmp/gdfr-before}
rm -rf "$dest" && mkdir -p "$dest"
git -C "$(dirname "$0")/.." archive "$commit" keras_gdfr | tar -x -C "$dest"
mv "$dest/keras_gdfr" "$dest/keras_gdfr_before"
grep -rl "keras_gdfr" "$dest/keras_gdfr_before" | xargs sed -i 's/keras_gdfr\b/keras_gdfr_before/g'
echo "$dest/keras_gdfr_before (from $(git -C "$(dirname "$0")/.." rev-parse --short "$commit"))"
