#!/usr/bin/env bash
# The in-tree loop, timed: inside a kernel source tree, `kdf run --build --
# true` after a one-file change, the same with nothing changed, the boot
# alone (`kdf run -- true`), and the floor (`make vmlinux` after the same
# change), interleaved; with --vng, virtme-ng's loop on the same build too.
# Run with --help for usage.
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

With --vng, each round also times virtme-ng's loop on the same build:
  vng-change     touch SRC/FILE; vng -b O=BUILD LOCALVERSION=;
                 vng -r BUILD/arch/x86/boot/bzImage --exec true
  vng-no-change  the same without the touch
  vng-boot       vng -r BUILD/arch/x86/boot/bzImage --exec true
  (vng -b        the vng -b part of vng-change, reported on its own)
vng -b finds BUILD's .config and leaves it as it is, then runs make (the
whole kernel) in BUILD; LOCALVERSION= undoes its -virtme suffix, which would
change the release and make each tool's build redo the other's version
files. vng gets --disable-kvm when kdf's warm-up fell back to TCG.

Options:
  -n, --runs N       rounds (default 5)
  -f, --file FILE    the file to change, relative to SRC (default fs/pipe.c)
  -k, --build DIR    the build directory; it is recorded as SRC's build with
                     a no-change \`kdf kernel build -O DIR\` first
      --overlay      run in a private mount namespace (root; unshare -m) with
                     SRC and DIR under overlays: the change and the rebuild
                     land in a temporary upper directory and nothing outside
                     changes (for source trees and builds others use)
      --vng          also time virtme-ng (from PyPI, installed into its venv
                     when missing)
      --kdf PATH     the kdf binary [default: $repo/target/release/kdf]
  -h, --help         this help

kdf runs with a cache of its own (a temporary XDG_CACHE_HOME), filled by the
warm-up. KDF_INIT is set to the repository's musl kdf-init when unset.
KDF_BENCH_VENV is virtme-ng's venv [default: \$XDG_CACHE_HOME/kdf-bench/venv,
as for bench/boot.sh].
EOF
}

die() { echo "bench/loop.sh: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

runs=5 file=fs/pipe.c build="" overlay=0 kdf_bin="" src="" inside=0 vng=0
args=("$@")
while (($#)); do
    case $1 in
    -n | --runs) runs=${2:?}; shift ;;
    -f | --file) file=${2:?}; shift ;;
    -k | --build) build=${2:?}; shift ;;
    --overlay) overlay=1 ;;
    --vng) vng=1 ;;
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

venv=${KDF_BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/kdf-bench/venv}
if ((vng)) && [[ ! -x $venv/bin/vng ]]; then
    note "installing virtme-ng into $venv (pip install virtme-ng)"
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet virtme-ng ||
        die "could not install virtme-ng into $venv"
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

# seconds T0 T1: the difference, to 0.01 s.
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# timed KIND CMD...: runs CMD (its output to $work/last.*), sets $last to its
# wall seconds; a failure ends the benchmark with its output.
timed() {
    local kind=$1 t0
    shift
    t0=$EPOCHREALTIME
    "$@" </dev/null >"$work/last.out" 2>"$work/last.err" ||
        { tail -n 30 "$work/last.out" "$work/last.err" >&2; die "$kind failed: $*"; }
    last=$(seconds "$t0" "$EPOCHREALTIME")
}
# record KIND: appends "KIND $last" to $work/times.
record() { echo "$1 $last" >>"$work/times"; }

kinds=(change no-change boot make)
if ((vng)); then
    kinds+=(vng-change vng-no-change vng-boot "vng -b")
    vng_kernel=$chosen_build/arch/x86/boot/bzImage
    [[ -f $vng_kernel ]] || die "no $vng_kernel for virtme-ng (x86 only)"
    if grep -q '^[^#]' "$chosen_build/kdf-make-vars" 2>/dev/null; then
        die "$chosen_build/kdf-make-vars records make variables that vng -b would not get: kdf kernel build -O $chosen_build --reset-vars first"
    fi
    vng_accel=()
    grep -q 'TCG' "$work/warmup.err" && vng_accel=(--disable-kvm)
    vng_build=(env PATH="$venv/bin:$PATH" KDF_BENCH_RUN="loop-$$/" vng -b O="$chosen_build" LOCALVERSION=)
    vng_run=(env PATH="$venv/bin:$PATH" KDF_BENCH_RUN="loop-$$/" vng "${vng_accel[@]}" -r "$vng_kernel" --exec true)
    vng_left=0 vng_failed=0 vng_runs=0
    fails=${TMPDIR:-/tmp}/kdf-loop-vng-failures.$$
    # reap: ends what vng left behind (marked KDF_BENCH_RUN=loop-$$/), counts it.
    reap() { vng_left=$((vng_left + $(python3 "$here/boot.py" reap "loop-$$/"))); }
    # vng_boot: one `vng -r ... --exec true`, timed into $last. A failed run
    # is kept in $fails, counted and reported, and run once more (a second
    # failure ends the benchmark).
    vng_boot() {
        local t0=$EPOCHREALTIME rc=0
        vng_runs=$((vng_runs + 1))
        "${vng_run[@]}" </dev/null >"$work/last.out" 2>"$work/last.err" || rc=$?
        reap
        if ((rc != 0)); then
            vng_failed=$((vng_failed + 1))
            mkdir -p "$fails"
            cp "$work/last.out" "$fails/$vng_failed.out"
            cp "$work/last.err" "$fails/$vng_failed.err"
            note "vng run failed (exit status $rc, $(seconds "$t0" "$EPOCHREALTIME") s; output in $fails/$vng_failed.*): running it again"
            t0=$EPOCHREALTIME
            timed "vng run (again)" "${vng_run[@]}"
            reap
        fi
        last=$(seconds "$t0" "$EPOCHREALTIME")
    }
    note "warming up virtme-ng $("$venv/bin/vng" --version 2>&1 | awk '{ print $NF; exit }'): ${vng_build[*]:3}; ${vng_run[*]:3}"
    timed "the warm-up vng -b" "${vng_build[@]}"
    note "warm-up vng -b: $last s"
    vng_boot
    note "warm-up vng run: $last s"
fi

: >"$work/times"
for ((i = 1; i <= runs; i++)); do
    touch "$src/$file"
    timed change "$kdf_bin" run --build -- true
    record change
    line="run $i/$runs: change $last"
    timed no-change "$kdf_bin" run --build -- true
    record no-change
    line+=" no-change $last"
    timed boot "$kdf_bin" run -- true
    record boot
    line+=" boot $last"
    touch "$src/$file"
    timed make make -s -C "$src" O="$chosen_build" -j"$(nproc)" vmlinux
    record make
    line+=" make $last"
    if ((vng)); then
        # vng-change and vng-no-change: vng -b's seconds plus the run's (a
        # failed run's time is not added).
        touch "$src/$file"
        timed "vng -b" "${vng_build[@]}"
        record "vng -b"
        line+=" vng -b $last"
        t0=$last
        vng_boot
        last=$(awk -v a="$t0" -v b="$last" 'BEGIN { printf "%.2f", a + b }')
        record vng-change
        line+=" vng-change $last"
        timed "vng -b" "${vng_build[@]}"
        t0=$last
        vng_boot
        last=$(awk -v a="$t0" -v b="$last" 'BEGIN { printf "%.2f", a + b }')
        record vng-no-change
        line+=" vng-no-change $last"
        vng_boot
        record vng-boot
        line+=" vng-boot $last"
    fi
    note "$line"
done

echo "kernel tree: $src (changed file: $file)"
echo "${chosen#\# }"
echo "kdf: $kdf_bin; $runs runs each; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
if ((vng)); then
    echo "virtme-ng: ${vng_build[*]:3}; ${vng_run[*]:3} ($vng_left processes left behind, ended)"
    echo "virtme-ng: $vng_failed of $vng_runs runs failed and were run again (a failed run's time is not counted; their output: $fails)"
fi
for kind in "${kinds[@]}"; do
    awk -v k="$kind" '{ t = $NF; $NF = ""; sub(/ $/, "") } $0 == k { print t }' "$work/times" | sort -n | awk -v k="$kind" '
        { t[NR] = $1 }
        END { m = NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
              printf "%-13s median %6.2f s  (min %.2f, max %.2f)\n", k, m, t[1], t[NR] }'
done
