#!/bin/bash
# Disk full, for real: `gdfr train` on a small tmpfs (issue 13). Run by
# tests/test_integrity_faults.py; by hand:  tests/faults/disk_full.sh DATA.zip OUT_DIR
#
# Inside a private mount namespace (root, or an unprivileged user namespace) it
# mounts a tmpfs of SIZE_KB (default 2600 KiB: epoch 1's checkpoint fits, epoch 2's
# does not, for the test's narrow tiny model) and runs, writing to OUT_DIR (outside it):
#   1.* a new 3-epoch run that fills the disk at epoch 2's checkpoint,
#   2.* `--resume` on the still-full disk,
#   3.* `--resume` after the tmpfs is grown to 16 MiB.
# N.rc, N.err (stderr) and N.files (every path under the run) per step, events.jsonl at the end.
# Exit 77 when no tmpfs can be mounted here (the caller skips).
set -u
data=$1 out=$2 size_kb=${SIZE_KB:-2600}
if [ "${GDFR_IN_NAMESPACE:-}" != 1 ]; then
    if [ "$(id -u)" = 0 ]; then ns=(unshare --mount --propagation private)
    else ns=(unshare --user --map-root-user --mount --propagation private); fi
    GDFR_IN_NAMESPACE=1 exec "${ns[@]}" "$0" "$@"
    exit 77
fi
mnt=$out/mnt
mkdir -p "$mnt"
mount -t tmpfs -o size=${size_kb}k tmpfs "$mnt" || exit 77
run=$mnt/run
gdfr() { "${PYTHON:-python}" -m keras_gdfr.cli "$@"; }
step() {  # step N ARGS...: run gdfr, record rc, stderr and the run's files
    local n=$1; shift
    gdfr "$@" >"$out/$n.out" 2>"$out/$n.err"
    echo $? >"$out/$n.rc"
    (cd "$run" 2>/dev/null && find . | sort) >"$out/$n.files"
}
step 1 train recipes/cifar10.toml --variant tiny --set "model.overrides.widths=[8,16,16,32]" --batch-size 64 \
    --data "$data" --limit-train 64 --limit-test 32 --epochs 3 --run-dir "$run"
step 2 train --resume "$run"
mount -o remount,size=16m "$mnt"
step 3 train --resume "$run"
cp "$run/events.jsonl" "$out/events.jsonl"
umount "$mnt"
