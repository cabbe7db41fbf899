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
# With --arch ARCH (another architecture than the host's, e.g. arm64), the
# package is the one `linux-image-ARCH` depends on (linux-image-6.1.0-N-arm64),
# resolved and fetched with a private apt configuration under DEST/.apt-ARCH:
# the system's mirrors with `arch=ARCH`, private lists and cache, an empty
# dpkg status. The system's apt state is never touched. A re-run updates
# those private lists (one small download) and prints the unpacked tree.
#
# Usage: scripts/fetch-kernel-package.sh RELEASE DEST
#        scripts/fetch-kernel-package.sh --arch ARCH DEST
#   e.g. scripts/fetch-kernel-package.sh "$(uname -r)" ~/.cache/kdf/kernel-packages
#        scripts/fetch-kernel-package.sh --arch arm64 ~/.cache/kdf/kernel-packages
set -eu

say() { echo "fetch-kernel-package: $*" >&2; }
arch=
if [ $# -eq 3 ] && [ "$1" = --arch ]; then
    arch=$2
    shift 2
elif [ $# -ne 2 ]; then
    echo "usage: $0 RELEASE DEST | $0 --arch ARCH DEST" >&2
    exit 2
fi
mkdir -p "${2:-$1}"

if [ -n "$arch" ]; then
    dest=$(cd "$1" && pwd)
    apt_dir=$dest/.apt-$arch
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    : >"$apt_dir/status"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    # The system's mirrors and suites (deb822 or one-line format), main only.
    {
        awk '/^URIs:/ {u=$2} /^Suites:/ {for (i = 2; i <= NF; i++) print u, $i}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
        awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } print $i, $(i+1) }' /etc/apt/sources.list 2>/dev/null || true
    } | sort -u | while read -r uri suite; do
        echo "deb [arch=$arch signed-by=$keyring] $uri $suite main"
    done >"$apt_dir/sources.list"
    [ -s "$apt_dir/sources.list" ] || echo "deb [arch=$arch signed-by=$keyring] http://deb.debian.org/debian bookworm main" >"$apt_dir/sources.list"
    set -- -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" \
        -o "Dir::State::status=$apt_dir/status" -o "APT::Architecture=$arch" \
        -o "APT::Architectures=$arch" -o Debug::NoLocking=1 -o APT::Sandbox::User=root
    if ! apt-get "$@" -qq update >"$apt_dir/update.log" 2>&1; then
        cat "$apt_dir/update.log" >&2
        say "cannot update the private $arch package lists"
        exit 1
    fi
    # linux-image-arm64 depends on exactly one linux-image-<release>.
    package=$(apt-cache "$@" depends "linux-image-$arch" | awk '/Depends: linux-image-/ {print $2; exit}')
    release=${package#linux-image-}
    if [ -z "$package" ]; then
        say "cannot resolve linux-image-$arch in $apt_dir/sources.list"
        exit 1
    fi
else
    release=$1
    dest=$(cd "$2" && pwd)
    package=linux-image-$release
fi

tree=$dest/$release
# The stamp sits next to the tree, which stays exactly as unpacked.
if [ -f "$tree.complete" ] && [ -d "$tree" ]; then
    echo "$tree"
    exit 0
fi

work=$(mktemp -d "$dest/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
deb=
[ -n "$arch" ] || deb=$(find /var/cache/apt/archives -maxdepth 1 -name "${package}_*.deb" 2>/dev/null | sort -V | tail -n 1)
if [ -z "$deb" ]; then
    say "downloading $package"
    if [ -z "$arch" ]; then set -- -o APT::Sandbox::User=root; fi
    if ! (cd "$work" && apt-get -qq "$@" download "$package") >&2; then
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
