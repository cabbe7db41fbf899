#!/bin/sh
# Fetches Debian's linux-source-7.3 (trixie-backports) into DEST and prints the
# path of the unpacked tree, DEST/linux-source-<package version>.
#
# The package comes from a private apt list and a private apt state directory
# under DEST/.apt: the system's apt sources, lists and caches are never
# touched, and nothing is installed. (Installing from trixie-backports on a
# bookworm machine pulls trixie's libc6 and half-upgrades the system.)
#
# An unpacked tree is kept per package version, so a re-run costs one
# `apt-get update` of a single list; offline, the newest tree already here is
# used.
#
# Usage: scripts/fetch-kernel-source.sh [DEST]
#   DEST                 default: $KDF_KERNEL_CACHE/kernel-src, where
#                        KDF_KERNEL_CACHE defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/kdf
#   KDF_KERNEL_PACKAGE   the package to fetch (default linux-source-7.3)
#   KDF_DEBIAN_SUITE     the suite holding it (default trixie-backports)
set -eu

if [ $# -gt 1 ]; then
    echo "usage: $0 [DEST]" >&2
    exit 2
fi
cache=${KDF_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kdf}
dest=${1:-$cache/kernel-src}
package=${KDF_KERNEL_PACKAGE:-linux-source-7.3}
suite=${KDF_DEBIAN_SUITE:-trixie-backports}

say() { echo "fetch-kernel-source: $*" >&2; }

mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
apt_dir=$dest/.apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"

# The mirror the system already uses (deb822 or one-line format), else Debian's.
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
if [ -z "$mirror" ]; then
    mirror=$(awk '$1 == "deb" && $2 !~ /^\[/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb [signed-by=$keyring] $mirror $suite main" >"$apt_dir/sources.list"

# Every apt path that could be written points into $apt_dir; the system's dpkg
# status is only read.
set -- -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" \
    -o Debug::NoLocking=1 -o APT::Sandbox::User=root

newest_tree() {
    for stamp in "$dest"/$package-*.complete; do
        [ -f "$stamp" ] && [ -d "${stamp%.complete}" ] && echo "${stamp%.complete}"
    done | sort -V | tail -n 1
}

if ! apt-get "$@" -qq update >"$apt_dir/update.log" 2>&1; then
    tree=$(newest_tree)
    if [ -n "$tree" ]; then
        say "apt-get update failed (offline?); using $tree"
        echo "$tree"
        exit 0
    fi
    cat "$apt_dir/update.log" >&2
    say "cannot reach $mirror $suite and no $package is unpacked in $dest"
    exit 1
fi

version=$(apt-cache "$@" show "$package" 2>/dev/null | awk '/^Version:/ {print $2}' | sort -V | tail -n 1)
if [ -z "$version" ]; then
    say "$suite has no package $package"
    exit 1
fi
tree=$dest/$package-$version
# The stamp sits next to the tree, which stays exactly as unpacked.
if [ -f "$tree.complete" ] && [ -d "$tree" ]; then
    echo "$tree"
    exit 0
fi

say "downloading $package $version"
work=$(mktemp -d "$dest/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get "$@" -qq download "$package=$version") >&2
dpkg -x "$work"/"$package"_*.deb "$work/x"
tarball=$(ls "$work"/x/usr/src/linux-source-*.tar.* | head -n 1)
mkdir "$work/src"
say "unpacking $(basename "$tarball")"
tar -xf "$tarball" -C "$work/src"
# The tarball holds one directory, linux-source-7.3.
top=$(ls "$work/src")
rm -rf "$tree"
mv "$work/src/$top" "$tree"
touch "$tree.complete"
echo "$tree"
