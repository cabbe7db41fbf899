#!/usr/bin/env bash
# Usage: kernel-config.sh TREE ALLCONFIG BUILD [MAKE ARGS...]
#
# buildKernelConfig's build step: BUILD/.config from `make allnoconfig` in
# the kernel source TREE, out of tree (O=BUILD), with KCONFIG_ALLCONFIG set
# to ALLCONFIG (kdf's merged fragments): every option no, except the ones
# the fragments set (how the kernel's own tinyconfig is made). MAKE ARGS: the
# kernel build's own flags (commonMakeFlags), so Kconfig probes the same
# compiler. build/lib/check-config.sh then verifies the result.
# build/kernel-config.nix runs it in the Nix build; kdf/tests/nix_scripts.rs
# with the test kernel's source.
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: kernel-config.sh TREE ALLCONFIG BUILD [MAKE ARGS...]" >&2
    exit 2
fi
tree=$1 allconfig=$2 build=$3
shift 3

# Every Nix derivation has `src` in its environment; kbuild's makefiles use
# $(src) for the directory being built since Linux b1992c3772e6, and
# nixpkgs' build.nix undefines it for every kernel make (`unset src` in
# older versions, `--eval=undefine src` in newer ones).
unset src
mkdir -p "$build"
make -C "$tree" O="$(realpath "$build")" KCONFIG_ALLCONFIG="$(realpath "$allconfig")" "$@" allnoconfig
