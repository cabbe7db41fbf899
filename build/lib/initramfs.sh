#!/usr/bin/env bash
# Usage: initramfs.sh KERNEL INIT OUT [MODULE_DIR...]
#
# buildInitramfs' build step: `kdf build initramfs` (kdf from PATH) for the
# kernel image KERNEL with INIT (kdf-init) as /init, written to OUT, with
# every module file under each MODULE_DIR (a module package's lib/modules),
# which kdf-init loads at boot. build/initramfs.nix runs it in the Nix build;
# kdf/tests/nix_scripts.rs runs it with the test kernel.
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: initramfs.sh KERNEL INIT OUT [MODULE_DIR...]" >&2
    exit 2
fi
kernel=$1 init=$2 out=$3
shift 3

args=()
for dir in "$@"; do
    if [ ! -d "$dir" ]; then
        echo "buildInitramfs: $dir does not exist; is ${dir%/lib/modules} a kernel module package?" >&2
        exit 1
    fi
    while IFS= read -r -d '' ko; do
        args+=(--module "$ko")
    done < <(find "$dir" \( -name '*.ko' -o -name '*.ko.[gx]z' -o -name '*.ko.zst' \) -print0 | sort -z)
done
kdf build initramfs --kernel "$kernel" --init "$init" "${args[@]}" -o "$out"
