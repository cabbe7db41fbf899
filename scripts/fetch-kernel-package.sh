#!/bin/sh
# Unpacks Debian's linux-image-RELEASE package (not installed: `dpkg -x`) into
# DEST/RELEASE and indexes its modules as its postinst would (`depmod -b`; the
# package ships no modules.dep), then prints that directory: boot/vmlinuz-RELEASE,
# boot/config-RELEASE and lib/modules/RELEASE, as kdf finds them next to a
# kernel image. A package already in apt's cache (/var/cache/apt/archives) is
# used as it is; otherwise `apt-get download` fetches it with the system's
# package lists (nothing is installed, no list is updated). An unpacked
# release is kept: a re-run prints it at once.
#
# Usage: scripts/fetch-kernel-package.sh RELEASE DEST
#   e.g. scripts/fetch-kernel-package.sh "$(uname -r)" ~/.cache/kdf/kernel-packages
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 RELEASE DEST" >&2
    exit 2
fi
release=$1
dest=$2
package=linux-image-$release
say() { echo "fetch-kernel-package: $*" >&2; }

mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
tree=$dest/$release
# The stamp sits next to the tree, which stays exactly as unpacked.
if [ -f "$tree.complete" ] && [ -d "$tree" ]; then
    echo "$tree"
    exit 0
fi

work=$(mktemp -d "$dest/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
deb=$(find /var/cache/apt/archives -maxdepth 1 -name "${package}_*.deb" 2>/dev/null | sort -V | tail -n 1)
if [ -z "$deb" ]; then
    say "downloading $package"
    if ! (cd "$work" && apt-get -qq -o APT::Sandbox::User=root download "$package") >&2; then
        say "cannot download $package (is it in the package lists? apt-get update)"
        exit 1
    fi
    deb=$(find "$work" -maxdepth 1 -name "${package}_*.deb" | head -n 1)
fi
say "unpacking $(basename "$deb")"
dpkg -x "$deb" "$work/x"
if [ ! -e "$work/x/boot/vmlinuz-$release" ]; then
    say "$deb has no boot/vmlinuz-$release"
    exit 1
fi
PATH=$PATH:/usr/sbin:/sbin depmod -b "$work/x" "$release"
rm -rf "$tree"
mv "$work/x" "$tree"
touch "$tree.complete"
echo "$tree"
