#!/bin/sh
# Builds the kernel kdf's integration tests boot, and prints its build
# directory: Debian's linux-source-7.3, kdf's fast profile with Rust, made
# with `kdf kernel config` and `kdf kernel build` (so CI exercises both).
# With --arch arm64: the same, cross-built for arm64 with Debian's
# aarch64-linux-gnu- GCC.
#
# The build is cached in $KDF_KERNEL_CACHE/test-kernel/<source>[-arm64]-<key>,
# where the key hashes configs/, kdf's config-merging code (kdf/src/kbuild/),
# the options the tests add (KUnit), the architecture and the toolchain's
# versions; a complete build with the same key is reused at once.
# Builds unused for two days are removed.
#
# Installs what is missing, the ordinary way: Debian build packages with
# apt-get (root, or sudo), bindgen with cargo, rust-src with rustup.
#
# Usage: scripts/build-test-kernel.sh [--arch x86_64|arm64] [SRC]
#   SRC               a kernel source tree (default: scripts/fetch-kernel-source.sh)
#   KDF_KERNEL_CACHE  default ${XDG_CACHE_HOME:-$HOME/.cache}/kdf
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${KDF_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kdf}
export PATH="$HOME/.cargo/bin:$PATH"
# bindgen finds bookworm's libclang 19 here (its default search may pick an older one).
export LIBCLANG_PATH="${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}"

say() { echo "build-test-kernel: $*" >&2; }

arch=x86_64
if [ "${1:-}" = "--arch" ]; then
    arch=${2:?--arch takes x86_64 or arm64}
    shift 2
fi
case $arch in
x86_64) cross='' suffix='' ;;
arm64) cross=aarch64-linux-gnu- suffix=-arm64 ;;
*) say "--arch $arch: x86_64 or arm64"; exit 2 ;;
esac

install_deps() {
    missing=
    # pahole (dwarves) is for the --bpf config check (BTF needs it), ccache for
    # the `kdf kernel build --ccache` test.
    cross_pkgs=
    [ -z "$cross" ] || cross_pkgs="gcc-${cross%-} binutils-${cross%-}"
    for p in make gcc flex bison bc libelf-dev libssl-dev libclang-19-dev dwarves python3 ccache $cross_pkgs; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        say "installing$missing"
        sudo=
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        $sudo apt-get update -q >&2
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >&2
    fi
    if ! command -v bindgen >/dev/null; then
        say "installing bindgen"
        cargo install --locked bindgen-cli >&2
    fi
    if [ ! -d "$(rustc --print sysroot)/lib/rustlib/src/rust/library" ]; then
        say "installing rust-src"
        rustup component add rust-src >&2
    fi
}

install_deps
src=${1:-$("$repo/scripts/fetch-kernel-source.sh")}
src=$(cd "$src" && pwd)

(cd "$repo" && cargo build --quiet -p kdf >&2)
kdf=$repo/target/debug/kdf

# What the tests need beyond the fast profile: KUnit, with the example suite
# as a module (so no suite runs at boot unless a test loads one).
config_args="--set CONFIG_KUNIT=y --set CONFIG_KUNIT_EXAMPLE_TEST=m"

key=$(
    (
        cd "$repo"
        cat configs/*.config kdf/src/kconfig/fragment.rs kdf/src/kbuild/kconfig_deps.rs \
            kdf/src/kbuild/profile.rs kdf/src/kbuild/verify.rs kdf/src/kbuild/layers.rs \
            kdf/src/kbuild/base.rs kdf/src/kbuild/inputs.rs kdf/src/kbuild/arch.rs
        echo "$config_args"
        echo "$arch"
        "${cross}gcc" --version | head -n 1
        "${cross}ld" --version | head -n 1
        rustc --version
        bindgen --version
    ) | sha256sum | cut -c 1-16
)
builds=$cache/test-kernel
build=$builds/$(basename "$src")$suffix-$key
mkdir -p "$builds"

# One build at a time per cache; parallel callers wait and reuse it.
exec 9>"$builds/lock"
flock 9

if [ -f "$build.ok" ] && [ -f "$build/vmlinux" ]; then
    touch "$build.ok"
    echo "$build"
    exit 0
fi

say "building $build"
# shellcheck disable=SC2086 # word splitting wanted
"$kdf" kernel config --arch "$arch" --src "$src" -O "$build" $config_args >&2
"$kdf" kernel build -O "$build" >&2
touch "$build.ok"

# Builds with another key, unused (their stamp untouched) for two days.
find "$builds" -mindepth 1 -maxdepth 1 -name '*.ok' -mtime +1 | while read -r stamp; do
    old=${stamp%.ok}
    [ "$old" = "$build" ] && continue
    say "removing the old build $old"
    rm -rf "$old" "$stamp"
done

echo "$build"
