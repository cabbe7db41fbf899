#!/usr/bin/env bash
# Usage: vm-workdir.sh OUT [NAME DIR]...
#
# runvm's working directory: OUT/modules/ with a symlink to every module
# file under each package directory DIR (its unstripped .ko files), so
# `insmod modules/helloworld.ko` works in the VM. A file name that two
# packages share is ambiguous: each such file goes to OUT/modules/NAME/
# instead (NAME: the package's unique name, from build/qemu-cmd.nix).
# build/qemu-cmd.nix runs it in the Nix build; kdf/tests/nix_scripts.rs with
# local directories.
set -euo pipefail

if [ $# -lt 1 ] || [ $(($# % 2)) -ne 1 ]; then
    echo "usage: vm-workdir.sh OUT [NAME DIR]..." >&2
    exit 2
fi
out=$1
shift
names=()
dirs=()
while [ $# -gt 0 ]; do
    names+=("$1")
    dirs+=("$2")
    shift 2
done

files() {
    find -L "$1" -type f \( -name '*.ko' -o -name '*.ko.*' \) -print0 | sort -z
}

declare -A count=()
for dir in "${dirs[@]}"; do
    if [ ! -d "$dir" ]; then
        echo "buildQemuCmd: $dir does not exist; is it a kernel module package?" >&2
        exit 1
    fi
    while IFS= read -r -d '' file; do
        base=${file##*/}
        count[$base]=$((${count[$base]:-0} + 1))
    done < <(files "$dir")
done

mkdir -p "$out/modules"
for i in "${!dirs[@]}"; do
    while IFS= read -r -d '' file; do
        base=${file##*/}
        dest=$out/modules
        if [ "${count[$base]}" -gt 1 ]; then
            dest=$out/modules/${names[$i]}
        fi
        if [ -e "$dest/$base" ]; then
            echo "buildQemuCmd: ${names[$i]} has two module files named $base" >&2
            exit 1
        fi
        mkdir -p "$dest"
        ln -s "$file" "$dest/$base"
    done < <(files "${dirs[$i]}")
done
