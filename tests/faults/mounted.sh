#!/bin/bash
# Run a command with a folder read-only, or on a full disk, for real (issue 24). Used by
# tests/test_integrity_sidepaths.py; by hand:
#   tests/faults/mounted.sh ro DIR CMD...    DIR read-only (a read-only bind mount of itself)
#   tests/faults/mounted.sh full DIR CMD...  DIR on a tmpfs holding a copy of its files and a filler
#                                            that takes every free block: the next write gets ENOSPC
# Inside a private mount namespace (root, or an unprivileged user namespace): the mount ends with
# CMD, DIR is as it was afterwards, so CMD itself must record what it sees (e.g. `find DIR`).
# Exit 77 when no mount can be made here (the caller skips).
set -u
mode=$1 dir=$2
shift 2
if [ "${GDFR_IN_NAMESPACE:-}" != 1 ]; then
    if [ "$(id -u)" = 0 ]; then ns=(unshare --mount --propagation private)
    else ns=(unshare --user --map-root-user --mount --propagation private); fi
    GDFR_IN_NAMESPACE=1 exec "${ns[@]}" "$0" "$mode" "$dir" "$@"
    exit 77
fi
case $mode in
    ro) mount --bind "$dir" "$dir" && mount -o remount,bind,ro "$dir" || exit 77 ;;
    full)
        copy=$(mktemp -d)
        cp -a "$dir/." "$copy/"
        mount -t tmpfs -o size=$(( $(du -sk "$copy" | cut -f1) + 256 ))k tmpfs "$dir" || exit 77
        cp -a "$copy/." "$dir/" && rm -rf "$copy"
        dd if=/dev/zero of="$dir/.filler" bs=4k 2>/dev/null ;;
    *) echo "mode: ro or full" >&2; exit 2 ;;
esac
"$@"
