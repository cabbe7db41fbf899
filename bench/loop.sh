#!/usr/bin/env bash
# The in-tree loop, timed: inside a kernel source tree, `kdf run --build --
# true` after a one-file change, the same with nothing changed, the boot
# alone (`kdf run -- true`), and the floor (`make vmlinux` after the same
# change), interleaved. Run with --help for usage.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")

usage() {
    cat <<EOF
Usage: bench/loop.sh [OPTIONS] [SRC]

In the kernel source tree SRC (default: the working directory), whose kdf
build kdf run picks (.kdf-build, or the one -k names), times RUNS rounds of:
  change     touch SRC/FILE; kdf run --build -- true
  no-change  kdf run --build -- true
  boot       kdf run -- true
  make       touch SRC/FILE; make -s -C SRC O=BUILD -jNPROC vmlinux
after one untimed warm-up, and prints the median, minimum and maximum of each.
change - boot is what the rebuild after a one-file change costs; make is the
least any tool's rebuild can cost (kdf's build also makes bzImage, modules,
the gdb scripts and rust-project.json).

Options:
  -n, --runs N       rounds (default 5)
  -f, --file FILE    the file to change, relative to SRC (default fs/pipe.c)
  -k, --build DIR    the build directory; it is recorded as SRC's build with
                     a no-change \`kdf kernel build -O DIR\` first
      --overlay      run in a private mount namespace (root; unshare -m) with
                     SRC and DIR under overlays: the change and the rebuild
                     land in a temporary upper directory and nothing outside
                     changes (for source trees and builds others use)
      --kdf PATH     the kdf binary [default: $repo/target/release/kdf]
  -h, --help         this help

kdf runs with a cache of its own (a temporary XDG_CACHE_HOME), filled by the
warm-up. KDF_INIT is set to the repository's musl kdf-init when unset.
EOF
}

die() { echo "bench/loop.sh: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

runs=5 file=fs/pipe.c build="" overlay=0 kdf_bin="" src="" inside=0
args=("$@")
while (($#)); do
    case $1 in
    -n | --runs) runs=${2:?}; shift ;;
    -f | --file) file=${2:?}; shift ;;
    -k | --build) build=${2:?}; shift ;;
    --overlay) overlay=1 ;;
    --inside-overlay) inside=1 ;;
    --kdf) kdf_bin=${2:?}; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option: $1" ;;
    *) src=$1 ;;
    esac
    shift
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs wants a positive integer, not '$runs'"
src=$(realpath "${src:-.}")
[[ -f $src/Makefile && -f $src/Kconfig ]] || die "$src is not a kernel source tree"
[[ -f $src/$file ]] || die "no such file: $src/$file"
[[ -z $build ]] || build=$(realpath "$build")
if ((overlay && !inside)); then
    [[ -n $build ]] || die "--overlay needs -k BUILD (the build directory to put under an overlay)"
    exec unshare --mount --propagation private -- "$0" --inside-overlay "${args[@]}"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/kdf-loop.XXXXXX")
trap 'rm -rf "$work"' EXIT
if ((inside)); then
    n=0
    for dir in "$src" "$build"; do
        n=$((n + 1))
        mkdir -p "$work/upper$n" "$work/work$n"
        mount -t overlay overlay -o "lowerdir=$dir,upperdir=$work/upper$n,workdir=$work/work$n" "$dir" ||
            die "cannot mount an overlay on $dir"
    done
    note "SRC and the build directory are under overlays in a private mount namespace"
fi

if [[ -z $kdf_bin ]]; then kdf_bin=$repo/target/release/kdf; fi
[[ -x $kdf_bin ]] || die "kdf not found: cargo build --release -p kdf, or pass --kdf PATH"
musl_init=$repo/target/x86_64-unknown-linux-musl/release/kdf-init
[[ -n ${KDF_INIT:-} || ! -x $musl_init ]] || export KDF_INIT=$musl_init
export XDG_CACHE_HOME=$work/cache
cd "$src"

if [[ -n $build ]]; then
    "$kdf_bin" kernel build -O "$build" 2>"$work/record.err" || { cat "$work/record.err" >&2; die "kdf kernel build -O $build failed"; }
fi
chosen=$("$kdf_bin" run --dry-run | awk 'NR == 1')
note "${chosen#\# }"
# "# kernel: BUILD, the build of the kernel tree ..."
chosen_build=${chosen#\# kernel: }
chosen_build=${chosen_build%%, the build of*}
[[ -f $chosen_build/.config ]] || die "kdf run in $src does not boot a build of the tree: ${chosen#\# }"
note "warming up (fills kdf's cache)"
"$kdf_bin" run --build -- true >/dev/null 2>"$work/warmup.err" || { cat "$work/warmup.err" >&2; die "the warm-up run failed"; }

# timed KIND ARGS...: runs kdf, appends "KIND SECONDS" to $work/times.
timed() {
    local kind=$1 t0 t1
    shift
    t0=$EPOCHREALTIME
    "$kdf_bin" run "$@" -- true >/dev/null 2>"$work/last.err" || { cat "$work/last.err" >&2; die "$kind run failed"; }
    t1=$EPOCHREALTIME
    last=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    echo "$kind $last" >>"$work/times"
}
: >"$work/times"
for ((i = 1; i <= runs; i++)); do
    touch "$src/$file"
    timed change --build
    line="run $i/$runs: change $last"
    timed no-change --build
    line+=" no-change $last"
    timed boot
    line+=" boot $last"
    touch "$src/$file"
    t0=$EPOCHREALTIME
    make -s -C "$src" O="$chosen_build" -j"$(nproc)" vmlinux >"$work/make.out" 2>&1 || { cat "$work/make.out" >&2; die "make failed"; }
    last=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    echo "make $last" >>"$work/times"
    note "$line make $last"
done

echo "kernel tree: $src (changed file: $file)"
echo "${chosen#\# }"
echo "kdf: $kdf_bin; $runs runs each; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
for kind in change no-change boot make; do
    awk -v k="$kind" '$1 == k { print $2 }' "$work/times" | sort -n | awk -v k="$kind" '
        { t[NR] = $1 }
        END { m = NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
              printf "%-10s median %6.2f s  (min %.2f, max %.2f)\n", k, m, t[1], t[NR] }'
done
