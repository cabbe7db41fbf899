#!/usr/bin/env bash
# Usage: module-build.sh KDIR [MAKE ARGS...]
#
# The build step of buildCModule and buildRustModule, run in the module's
# source directory: kbuild against the kernel build directory KDIR
# (`make -C KDIR M=$PWD modules`; a Kbuild file, or a Makefile that sets
# obj-m, is all it reads). MAKE ARGS: the kernel's make flags
# (kernel.commonMakeFlags: the compiler it was built with), the user's
# makeFlags, -jN. build/c-module.nix runs it in the Nix build;
# kdf/tests/nix_scripts.rs runs it against the test kernel.
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: module-build.sh KDIR [MAKE ARGS...]" >&2
    exit 2
fi
kdir=$1
shift

# Every Nix derivation has `src` in its environment; kbuild's makefiles use
# $(src) for the directory being built (Linux b1992c3772e6), and nixpkgs'
# build.nix undefines it for every kernel make.
unset src
make -C "$kdir" M="$PWD" "$@" modules
