#!/usr/bin/env bash
# Runs kdf's whole test suite: the unit tests of every crate, then the
# integration tests that boot real VMs (under TCG where KVM cannot boot Linux)
# with the host's kernel and with kdf's own minimal kernel built from source.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release -p kdf-init --target x86_64-unknown-linux-musl
# arm64 guests (kdf/tests/arm64.rs): kdf finds this build next to its own target dir.
cargo build --release -p kdf-init --target aarch64-unknown-linux-musl
python3 scripts/check-import-cycles.py --self-test; python3 scripts/check-import-cycles.py kdf/src kdf-init/src kdf-proto/src
export KDF_INIT="$PWD/target/x86_64-unknown-linux-musl/release/kdf-init"

# kdf's fast-profile kernel (built once, cached by source version and config).
if [ -z "${KDF_TEST_KERNEL_BUILD:-}" ]; then
  started=$(date +%s)
  KDF_TEST_KERNEL_SRC=$(scripts/fetch-kernel-source.sh)
  KDF_TEST_KERNEL_BUILD=$(scripts/build-test-kernel.sh "$KDF_TEST_KERNEL_SRC")
  export KDF_TEST_KERNEL_SRC KDF_TEST_KERNEL_BUILD
  echo "test.sh: the x86_64 test kernel took $(($(date +%s) - started)) s" >&2
fi

# The same kernel cross-built for arm64 (cached the same way; cold, 15
# CPU-minutes, 26.6 minutes of wall time on 2 shared cores): `kdf kernel
# config|build --arch arm64`, arm64 modules built against it and booted with
# it: exact output over virtiofs and 9p, a splat, KUnit, --timeout and `kdf
# gdb` with gdb-multiarch (kdf/tests/arm64_kernel.rs).
if [ -z "${KDF_TEST_KERNEL_BUILD_ARM64:-}" ]; then
  started=$(date +%s)
  KDF_TEST_KERNEL_BUILD_ARM64=$(scripts/build-test-kernel.sh --arch arm64 \
    "${KDF_TEST_KERNEL_SRC:-$(scripts/fetch-kernel-source.sh)}")
  export KDF_TEST_KERNEL_BUILD_ARM64
  echo "test.sh: the arm64 test kernel took $(($(date +%s) - started)) s" >&2
fi

# As root (CI), a subset also runs as an unprivileged user.
if [ "$(id -u)" -eq 0 ]; then
  id kdf-test >/dev/null 2>&1 || useradd --system --create-home kdf-test
  export KDF_TEST_USER=kdf-test
fi

# The flake: its pure functions, the builders and the whole flake against a
# stand-in nixpkgs (kdf/tests/nix_scripts.rs runs their shell steps below).
nix-instantiate --eval --strict build/tests/config.nix
nix-instantiate --eval --strict -E 'import ./build/tests/builders.nix { }'
build/tests/eval-flake.sh

# VM tests are CPU-bound under TCG: a few at a time.
cargo test --workspace -- --test-threads="${KDF_TEST_THREADS:-3}" "$@"
