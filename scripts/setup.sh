#!/usr/bin/env bash
# Sets up a fresh Debian or Ubuntu machine for kdf: QEMU, a kernel to boot if
# none is installed, virtiofsd, the Rust musl targets, and kdf + kdf-init
# (installed together into ~/.cargo/bin, so kdf finds kdf-init by itself;
# kdf-init-aarch64 beside them for arm64 guests).
# Safe to re-run: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# shellcheck disable=SC1091
. /etc/os-release
case "${ID:-} ${ID_LIKE:-}" in
*ubuntu*) kernel_pkg=linux-image-generic ;;
*) kernel_pkg=linux-image-amd64 ;;
esac

# rsync: kselftest's `make install` (README, "Kernel selftests") copies with it.
# The runvm/rungdb scripts are checked with shellcheck, as nixpkgs'
# writeShellApplication does (kdf/tests/nix_scripts.rs); gdb: `kdf gdb`.
# arm64 guests: qemu-system-arm (qemu-system-aarch64), gcc-aarch64-linux-gnu
# (the linker of kdf-init's aarch64 build, .cargo/config.toml; with
# binutils-aarch64-linux-gnu also `kdf kernel build --arch arm64` and arm64
# modules, CROSS_COMPILE=aarch64-linux-gnu-), gdb-multiarch (`kdf gdb` of an
# arm64 guest).
pkgs=(qemu-system-x86 qemu-utils kmod cpio busybox-static gcc make libc6-dev pkg-config
  libseccomp-dev libcap-ng-dev python3-venv ca-certificates curl xz-utils zstd nix-bin rsync
  shellcheck gdb qemu-system-arm gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu gdb-multiarch)
if ! compgen -G '/boot/vmlinuz-*' >/dev/null; then
  pkgs+=("$kernel_pkg")
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The headers of the kernel kdf boots by default (the newest installed), so
# out-of-tree modules build against it (README, "Developing a module").
newest=$(find /boot -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' 2>/dev/null | sed 's/^vmlinuz-//' | sort -V | tail -n 1)
if [ -n "$newest" ] && [ ! -e "/lib/modules/$newest/build" ] && apt-cache show "linux-headers-$newest" >/dev/null 2>&1; then
  log "installing linux-headers-$newest"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "linux-headers-$newest"
fi

if ! command -v cargo >/dev/null; then
  [ -x "$HOME/.cargo/bin/cargo" ] || {
    log "installing Rust with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  }
  export PATH="$HOME/.cargo/bin:$PATH"
fi
rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl >/dev/null

if ! command -v virtiofsd >/dev/null && [ ! -x /usr/libexec/virtiofsd ]; then
  if apt-cache show virtiofsd >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends virtiofsd
  else
    log "building virtiofsd (about 3 minutes)"
    cargo install --locked virtiofsd
  fi
fi

# drgn reads kdf's vmcores (README, "Post-mortem"; the tests open one with
# it): from PyPI into a venv of its own (Debian's Python refuses a system-wide
# pip install), once.
drgn_venv=${XDG_CACHE_HOME:-$HOME/.cache}/kdf/drgn
if [ ! -x "$drgn_venv/bin/drgn" ]; then
  log "installing drgn into $drgn_venv (pip install drgn)"
  python3 -m venv "$drgn_venv"
  "$drgn_venv/bin/pip" install --quiet drgn
fi

log "building and installing kdf and kdf-init"
cargo install --locked --quiet --path kdf --target-dir target
cargo install --locked --quiet --path kdf-init --target x86_64-unknown-linux-musl --target-dir target
# cargo install would name it kdf-init too: build it and copy it beside kdf.
cargo build --locked --quiet --release -p kdf-init --target aarch64-unknown-linux-musl --target-dir target
install -m 0755 target/aarch64-unknown-linux-musl/release/kdf-init "${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin/kdf-init-aarch64"

for k in /boot/vmlinuz-*; do
  [ -r "$k" ] || log "note: $k is not readable by $(id -un); kdf needs to read it (sudo chmod 0644 $k)"
done
log "done: try 'kdf run -- uname -a' (drgn: $drgn_venv/bin/drgn)"
