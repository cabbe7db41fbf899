#!/usr/bin/env bash
# Usage: module-install.sh NAME KDIR OUT [MAKE ARGS...]
#
# The install step of buildCModule and buildRustModule, run in the module's
# source directory after module-build.sh:
#   OUT/lib/modules/<release>/extra/*.ko   kbuild's modules_install (the Nix
#                                          fixup strips these; buildInitramfs
#                                          takes them)
#   OUT/share/kdf/modules/*.ko             unstripped copies (runvm's
#                                          modules/, rungdb's lx-symbols-nix)
# depmod is skipped (DEPMOD=true): a kernel's dev build dir has no
# System.map, and kdf computes the modules' dependencies itself. NAME names
# the package in errors.
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: module-install.sh NAME KDIR OUT [MAKE ARGS...]" >&2
    exit 2
fi
name=$1 kdir=$2 out=$3
shift 3

mapfile -d '' kos < <(find . -name '*.ko' -print0 | sort -z)
if [ ${#kos[@]} -eq 0 ]; then
    echo "buildCModule ($name): kbuild built no .ko in $PWD; does the Kbuild file set obj-m?" >&2
    exit 1
fi

unset src # as in module-build.sh
make -C "$kdir" M="$PWD" "$@" INSTALL_MOD_PATH="$out" INSTALL_MOD_DIR=extra DEPMOD=true modules_install
mkdir -p "$out/share/kdf/modules"
cp -t "$out/share/kdf/modules" "${kos[@]}"
