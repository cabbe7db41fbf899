#!/usr/bin/env bash
# Boot benchmark: `kdf run -- true` against virtme-ng (`vng --exec true`) and
# the floor (QEMU booting the same kernel, the fastest way it can, to a busybox
# /init that reboots at once), interleaved, on one kernel and one QEMU.
# Run with --help for usage. Helpers (image extraction, cpio, report) live in
# boot.py next to this script.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
helper=$here/boot.py
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kdf-bench

usage() {
    cat <<EOF
Usage: bench/boot.sh [OPTIONS]

Times, interleaved (kdf, vng, floor, kdf, vng, floor, ...) on the same kernel:
  kdf    kdf run --timings --kernel KERNEL -- true
  vng    vng -r KERNEL --exec true   (virtme-ng from PyPI, in a venv under
         $cache/venv; --disable-kvm when KVM is not usable)
  floor  qemu-system-x86_64 booting the kernel's PVH vmlinux (else its bzImage)
         with an uncompressed cpio whose static-busybox /init reboots at once;
         every variant (-M below) is timed and the fastest median is the floor
and prints medians and minimums (and max), kdf/floor (of both) and kdf/vng,
kdf's own breakdown, and a verdict on the minimums against the targets
(issue 12: a distro kernel, kdf <= 1.15x the fastest floor; kdf's fast kernel,
kdf within 0.15 s of it), given at least 15 runs.
Each tool gets one warm-up run first (not counted: it fills kdf's caches).

Options:
  -n, --runs N          timed runs of each (default 15: fewer give no verdict,
                        these machines are too noisy)
  -k, --kernel PATH     a bzImage/vmlinuz, a vmlinux with a PVH entry, or a
                        kernel build directory (DIR/vmlinux for the floor,
                        DIR/arch/x86/boot/bzImage for vng) [default: the newest
                        /boot/vmlinuz-*]
  -M, --machine SPEC    a floor variant to try (repeatable): a -M machine
                        type, optionally followed by more QEMU arguments
                        (split at spaces) [default: 'q35', 'q35 -bios
                        qboot.rom', 'pc', 'pc -bios qboot.rom',
                        'microvm,acpi=off']
      --accel auto|kvm|tcg
                        [default: auto: KVM only when the CPU has vmx/svm,
                        /dev/kvm opens and a floor boot under KVM succeeds]
      --kdf PATH        the kdf binary [default: $repo/target/release/kdf,
                        else kdf on PATH]; KDF_INIT is set to the repo's musl
                        build of kdf-init when unset and that file exists
      --kdf-arg ARG     one more argument for `kdf run` (repeatable), e.g.
                        --kdf-arg=--machine=q35 to time a non-default machine
      --no-vng          skip virtme-ng
      --json FILE       also write the medians, minimums, ratios and kdf's
                        per-phase breakdown as JSON
      --stress          instead of timing: ROUNDS rounds of PARALLEL
                        `kdf run -- true` at once (default 50 x 8 = 400
                        boots); every boot must exit 0 within --timeout with
                        no "Unable to calibrate" on its console (booted with
                        loglevel=5 so warnings reach it). Prints the
                        failures by kind; exits 1 on any
      --rounds N, --parallel N
                        the stress run's shape (default 50, 8)
      --timeout SECS    per-run limit; a run over it fails the benchmark
                        [default: 300]
      --keep            keep the work directory (raw times, outputs, consoles)
  -h, --help            this help

Environment: KDF_QEMU (the QEMU all three use; default qemu-system-x86_64 on
PATH), KDF_BENCH_VENV (virtme-ng's venv), XDG_CACHE_HOME.
Every run must exit 0 (the floor must also print its /init mark); the first
failure aborts the benchmark with that run's output. Processes a run leaves
behind (found by a KDF_BENCH_RUN marker in their environment) are killed and
counted.
EOF
}

die() { echo "bench/boot.sh: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }
# Shell-quotes words for display: single quotes only where needed.
quote() {
    local out="" a
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_./=:,+@%-]+$ ]]; then out+="$a "
        else out+="'${a//\'/\'\\\'\'}' "; fi
    done
    echo "${out% }"
}

# --- options -------------------------------------------------------------------
runs=15 kernel="" accel=auto kdf_bin="" use_vng=1 run_timeout=300 keep=0
json="" stress=0 rounds=50 parallel=8
machines=() kdf_args=()
while (($#)); do
    case $1 in
    -n | --runs) runs=${2:?}; shift ;;
    --runs=*) runs=${1#*=} ;;
    -k | --kernel) kernel=${2:?}; shift ;;
    --kernel=*) kernel=${1#*=} ;;
    -M | --machine) machines+=("${2:?}"); shift ;;
    --machine=*) machines+=("${1#*=}") ;;
    --accel) accel=${2:?}; shift ;;
    --accel=*) accel=${1#*=} ;;
    --kdf) kdf_bin=${2:?}; shift ;;
    --kdf=*) kdf_bin=${1#*=} ;;
    --no-vng) use_vng=0 ;;
    --kdf-arg) kdf_args+=("${2:?}"); shift ;;
    --kdf-arg=*) kdf_args+=("${1#*=}") ;;
    --json) json=${2:?}; shift ;;
    --json=*) json=${1#*=} ;;
    --stress) stress=1 ;;
    --rounds) rounds=${2:?}; shift ;;
    --rounds=*) rounds=${1#*=} ;;
    --parallel) parallel=${2:?}; shift ;;
    --parallel=*) parallel=${1#*=} ;;
    --timeout) run_timeout=${2:?}; shift ;;
    --timeout=*) run_timeout=${1#*=} ;;
    --keep) keep=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs wants a positive integer, not '$runs'"
[[ $rounds =~ ^[1-9][0-9]*$ && $parallel =~ ^[1-9][0-9]*$ ]] || die "--rounds and --parallel want positive integers"
[[ -z $json ]] || json=$(realpath -m "$json")
[[ $run_timeout =~ ^[1-9][0-9]*$ ]] || die "--timeout wants a positive integer, not '$run_timeout'"
[[ $accel == @(auto|kvm|tcg) ]] || die "--accel wants auto, kvm or tcg, not '$accel'"
# qboot (QEMU's minimal firmware) starts faster than SeaBIOS under TCG; microvm
# needs acpi=off here (with ACPI the 6.1 kernel hangs calibrating its timers).
((${#machines[@]})) || machines=(q35 "q35 -bios qboot.rom" pc "pc -bios qboot.rom" "microvm,acpi=off")

# --- tools ---------------------------------------------------------------------
command -v python3 >/dev/null || die "python3 not found"
qemu=${KDF_QEMU:-$(command -v qemu-system-x86_64 || true)}
[[ -x $qemu ]] || die "QEMU not found (apt install qemu-system-x86, or set KDF_QEMU)"
qemu=$(realpath "$qemu")
busybox=$(command -v busybox || true)
[[ -n $busybox ]] && python3 "$helper" static "$(realpath "$busybox")" ||
    die "a static busybox is needed for the floor's /init: apt install busybox-static"
if [[ -z $kdf_bin ]]; then
    if [[ -x $repo/target/release/kdf ]]; then kdf_bin=$repo/target/release/kdf
    else kdf_bin=$(command -v kdf || true); fi
fi
[[ -x $kdf_bin ]] || die "kdf not found: build it (cargo build --release -p kdf) or pass --kdf PATH"
kdf_bin=$(realpath "$kdf_bin")
musl_init=$repo/target/x86_64-unknown-linux-musl/release/kdf-init
if [[ -z ${KDF_INIT:-} && $kdf_bin == "$repo/target/release/kdf" && -x $musl_init ]]; then
    export KDF_INIT=$musl_init
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/kdf-bench.XXXXXX")
id=kdfbench-$$-$RANDOM
cleanup() {
    # Anything still carrying this benchmark's marker goes.
    python3 "$helper" reap "$id/" >/dev/null 2>&1 || true
    if ((keep)); then note "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$work/cwd" "$work/bin" "$cache"
# vng finds QEMU on PATH: make it the same binary as kdf's and the floor's.
ln -s "$qemu" "$work/bin/qemu-system-x86_64"
export KDF_QEMU=$qemu

# --- the kernel ----------------------------------------------------------------
if [[ -z $kernel ]]; then
    kernel=$(printf '%s\n' /boot/vmlinuz-* | sort -V | tail -n 1)
    [[ -f $kernel ]] || die "no /boot/vmlinuz-* installed: pass --kernel PATH"
fi
[[ -e $kernel ]] || die "no such kernel: $kernel"
kernel=$(realpath "$kernel")
is_elf() { [[ $(head -c 4 "$1" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]]; }
vng_kernel=""
if [[ -d $kernel ]]; then
    [[ -f $kernel/vmlinux ]] || die "$kernel has no vmlinux: build it first (kdf kernel build)"
    kdf_kernel=$kernel
    if python3 "$helper" has-pvh "$kernel/vmlinux"; then floor_image=$kernel/vmlinux pvh=yes
    else floor_image=$kernel/arch/x86/boot/bzImage pvh=no; fi
    [[ -f $kernel/arch/x86/boot/bzImage ]] && vng_kernel=$kernel/arch/x86/boot/bzImage
    kernel_desc="build directory; PVH: $pvh; floor boots $(basename "$floor_image")"
    target=0.15 target_unit=s
    target_note="issue 12 (kdf's fast-profile kernel, assumed for a build directory or vmlinux): kdf within 0.15 s of the fastest floor"
elif is_elf "$kernel"; then
    python3 "$helper" has-pvh "$kernel" || die "$kernel is an ELF kernel without a PVH entry: QEMU cannot boot it"
    kdf_kernel=$kernel floor_image=$kernel
    guess=$(dirname "$kernel")/arch/x86/boot/bzImage
    [[ -f $guess ]] && vng_kernel=$guess
    kernel_desc="vmlinux with a PVH entry"
    target=0.15 target_unit=s
    target_note="issue 12 (kdf's fast-profile kernel, assumed for a build directory or vmlinux): kdf within 0.15 s of the fastest floor"
else
    kdf_kernel=$kernel vng_kernel=$kernel
    sum=$(sha256sum "$kernel" | cut -c1-32)
    mkdir -p "$cache/vmlinux"
    if [[ ! -f $cache/vmlinux/$sum.pvh && ! -f $cache/vmlinux/$sum.no-pvh ]]; then
        note "extracting the vmlinux from $kernel"
        pvh=$(python3 "$helper" vmlinux "$kernel" "$cache/vmlinux/$sum.elf") ||
            die "cannot extract a vmlinux from $kernel (is it a bzImage?)"
        touch "$cache/vmlinux/$sum.$pvh"
        [[ $pvh == pvh ]] || rm -f "$cache/vmlinux/$sum.elf"
    fi
    if [[ -f $cache/vmlinux/$sum.pvh ]]; then floor_image=$cache/vmlinux/$sum.elf pvh=yes
    else floor_image=$kernel pvh=no; fi
    kernel_desc="bzImage; PVH: $pvh; floor boots $([[ $pvh == yes ]] && echo "its extracted vmlinux" || echo "the bzImage")"
    target=1.15 target_unit=x
    target_note="issue 12 (a distro kernel): kdf <= 1.15x the fastest floor"
fi
if ((use_vng)) && [[ -z $vng_kernel ]]; then
    note "no bzImage next to $kernel for virtme-ng: skipping vng"
    use_vng=0
fi

# --- the floor's initramfs -------------------------------------------------------
mark=kdf-bench-floor-init
python3 "$helper" cpio "$work/floor.cpio" "$busybox" "$mark"
floor_argv() { # VARIANT ACCEL SERIAL_LOG: sets floor
    local -a variant
    read -ra variant <<<"$1"
    # The floor gets every kernel argument that speeds kdf's boot too
    # (no_timer_check; under TCG noapictimer and kdf's TSC rate), so the ratio
    # measures kdf, not a boot option.
    local speed=" no_timer_check"
    [[ $2 == tcg ]] && speed+=" noapictimer${floor_tsc:+ $floor_tsc}"
    floor=("$qemu" -M "${variant[0]}" "${variant[@]:1}" -accel "$2" -cpu max -m 1G -nodefaults -no-user-config -display none
        -no-reboot -kernel "$floor_image" -initrd "$work/floor.cpio"
        -append "console=ttyS0 reboot=t panic=-1 quiet$speed" -serial "file:$3")
}

# --- KVM or TCG ------------------------------------------------------------------
if [[ $accel == auto ]]; then
    accel=tcg
    if ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
        accel_why="no vmx/svm CPU flag"
    elif ! [[ -r /dev/kvm && -w /dev/kvm ]]; then
        accel_why="/dev/kvm not usable"
    else
        # /dev/kvm opening is no proof (FACTS.md): boot the floor under KVM.
        floor_argv q35 kvm "$work/probe.log"
        if timeout -k 2 60 "${floor[@]}" </dev/null >/dev/null 2>&1 && grep -q "^$mark" "$work/probe.log"; then
            accel=kvm accel_why="a KVM boot of the floor worked"
        else
            accel_why="a KVM boot of the floor failed"
        fi
    fi
    accel_desc="$accel (auto: $accel_why)"
else
    accel_desc="$accel (forced)"
fi
vng_accel=()
[[ $accel == tcg ]] && vng_accel=(--disable-kvm)
# Under TCG kdf gives the guest the host's TSC rate (tsc_early_khz=N
# tsc=reliable: no calibration against the PIT, which fails on a starved
# vCPU and then slows the boot); the floor gets the same, read from kdf's
# dry run.
floor_tsc=""
if [[ $accel == tcg ]]; then
    floor_tsc=$("$kdf_bin" run --dry-run --accel tcg --kernel "$kdf_kernel" -- true 2>/dev/null |
        grep -o 'tsc_early_khz=[0-9]* tsc=reliable' | head -n 1 || true)
fi

# --- virtme-ng -----------------------------------------------------------------
((stress)) && use_vng=0
venv=${KDF_BENCH_VENV:-$cache/venv}
if ((use_vng)); then
    if [[ ! -x $venv/bin/vng ]]; then
        note "installing virtme-ng into $venv (pip install virtme-ng)"
        python3 -m venv "$venv" && "$venv/bin/pip" install --quiet virtme-ng ||
            die "could not install virtme-ng into $venv"
    fi
    vng_version=$("$venv/bin/vng" --version 2>&1 | awk '{print $NF; exit}')
fi

# --- one run ---------------------------------------------------------------------
declare -A leftovers=() floor_variant=()
# run_one TOOL INDEX: runs it, appends "TOOL SECONDS" to $work/times (INDEX > 0),
# aborts with its output if it fails. Sets $last to the wall seconds.
run_one() {
    local tool=$1 i=$2 out=$work/$1.$2 rc=0 t0 t1 n why=""
    local marker=$id/$tool/$i/
    local -a cmd env=(KDF_BENCH_RUN="$marker")
    case $tool in
    kdf) cmd=("$kdf_bin" run --timings --accel "$accel" --kernel "$kdf_kernel" "${kdf_args[@]}" -- true) ;;
    vng)
        cmd=(vng "${vng_accel[@]}" -r "$vng_kernel" --exec true)
        env+=(PATH="$work/bin:$venv/bin:$PATH")
        ;;
    floor-*) floor_argv "${floor_variant[$tool]}" "$accel" "$out.serial"; cmd=("${floor[@]}") ;;
    esac
    t0=$EPOCHREALTIME
    env -C "$work/cwd" "${env[@]}" timeout -k 5 "$run_timeout" "${cmd[@]}" </dev/null >"$out.out" 2>"$out.err" || rc=$?
    t1=$EPOCHREALTIME
    n=$(python3 "$helper" reap "$marker")
    leftovers[${tool%%-*}]=$((${leftovers[${tool%%-*}]:-0} + n))
    last=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
    if ((rc == 124)); then
        why="exit status 124: over --timeout $run_timeout s"
    elif ((rc != 0)); then
        why="exit status $rc"
    elif [[ $tool == floor-* ]] && ! grep -q "^$mark" "$out.serial" 2>/dev/null; then
        why="exit status 0 but /init never printed its mark (a kernel panic also exits 0)"
    fi
    if [[ -n $why ]]; then
        local name=$tool
        [[ $tool == floor-* ]] && name="floor -M '${floor_variant[$tool]}'"
        {
            echo "bench: $name run $i failed after $last s ($why)"
            echo "  command: $(quote "${cmd[@]}")"
            echo "--- stdout"; tail -n 40 "$out.out"
            echo "--- stderr"; tail -n 40 "$out.err"
            [[ -f $out.serial ]] && { echo "--- console"; tail -n 40 "$out.serial"; }
        } >&2
        return 1
    fi
    if ((i > 0)); then
        echo "$tool $last" >>"$work/times"
        [[ $tool == floor-* ]] && awk -v t="$tool" -v m="$mark" '$1 == m {print t, $2; exit}' "$out.serial" >>"$work/floor_uptime"
    fi
    return 0
}

# --- the stress run: many boots at once, each must come back ----------------------
# One boot of the stress run: KIND on failure goes to $work/stress.fail.
stress_one() { # ROUND SLOT
    local out=$work/stress.$1.$2 rc=0 why=""
    env -C "$work/cwd" KDF_BENCH_RUN="$id/stress/$1/$2/" timeout -k 5 "$run_timeout" \
        "$kdf_bin" run --accel "$accel" --kernel "$kdf_kernel" "${kdf_args[@]}" \
        --console-log "$out.console" --cmdline loglevel=5 -- true </dev/null >"$out.out" 2>"$out.err" || rc=$?
    if ((rc == 124 || rc == 137)); then why="hang (over --timeout $run_timeout s)"
    elif grep -q "did not finish booting within" "$out.err"; then why="boot timeout"
    elif ((rc != 0)); then why="exit status $rc"
    fi
    if grep -q "Unable to calibrate" "$out.console" 2>/dev/null; then why="${why:+$why, }Unable to calibrate"; fi
    if [[ -n $why ]]; then echo "$1.$2 $why" >>"$work/stress.fail"; fi
    return 0
}
if ((stress)); then
    note "stress: $rounds rounds of $parallel parallel boots of $kernel (accel $accel_desc${kdf_args[*]:+, kdf run ${kdf_args[*]}})"
    : >"$work/stress.fail"
    started=$SECONDS
    for ((r = 1; r <= rounds; r++)); do
        for ((j = 1; j <= parallel; j++)); do stress_one "$r" "$j" & done
        wait
        python3 "$helper" reap "$id/stress/$r/" >/dev/null
        note "round $r/$rounds: $(wc -l <"$work/stress.fail") failures so far, $((SECONDS - started)) s"
    done
    total=$((rounds * parallel)) failed=$(wc -l <"$work/stress.fail")
    echo "kdf stress run: $total boots ($rounds rounds of $parallel at once) of $kernel"
    echo "  kdf:    $(quote "$kdf_bin" run --accel "$accel" --kernel "$kdf_kernel" "${kdf_args[@]}" -- true)"
    echo "  host:   $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end, $((SECONDS - started)) s"
    echo "  passed: $((total - failed))/$total"
    if ((failed)); then
        cut -d' ' -f2- "$work/stress.fail" | sort | uniq -c | sed 's/^/  failed: /'
        first=$(head -n 1 "$work/stress.fail" | cut -d' ' -f1)
        echo "  first failure ($first), its stderr and console tail:"
        tail -n 15 "$work/stress.$first.err" | sed 's/^/    /'
        tail -n 25 "$work/stress.$first.console" 2>/dev/null | sed 's/^/    [console] /'
        keep=1
        exit 1
    fi
    exit 0
fi

# --- warm-up: one untimed run each; a floor machine type that fails is dropped ----
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
note "kernel $kernel, accel $accel_desc, $runs runs each; warming up"
run_one kdf 0 || exit 1
vng_dropped=""
# virtme-ng cannot boot every kernel (issue 3 compares on "a kernel both can
# boot"): a failed warm-up drops it with the reason, it does not abort.
if ((use_vng)) && ! run_one vng 0 2>"$work/warmup-vng.err"; then
    vng_dropped=$(head -n 1 "$work/warmup-vng.err")
    note "virtme-ng failed its warm-up run, so it is not timed: $vng_dropped"
    note "(its output: $(tail -n 3 "$work/warmup-vng.err" | tr '\n' ' '))"
    use_vng=0
fi
floors=()
for ((v = 0; v < ${#machines[@]}; v++)); do
    t=floor-$((v + 1))
    floor_variant[$t]=${machines[v]}
    if run_one "$t" 0 2>"$work/warmup-$t.err"; then floors+=("$t")
    else note "floor -M '${machines[v]}' does not boot this kernel here: dropped ($(head -n 1 "$work/warmup-$t.err"))"; fi
done
((${#floors[@]})) || die "no floor machine type booted this kernel: ${machines[*]}"

# --- the interleaved runs ----------------------------------------------------------
tools=(kdf)
((use_vng)) && tools+=(vng)
tools+=("${floors[@]}")
: >"$work/times"
for ((i = 1; i <= runs; i++)); do
    line="run $i/$runs:"
    for t in "${tools[@]}"; do
        run_one "$t" "$i" || exit 1
        if [[ $t == floor-* ]]; then line+=" floor[${floor_variant[$t]}] $last"; else line+=" $t $last"; fi
    done
    note "$line"
done

# --- the report ------------------------------------------------------------------
{
    echo "runs=$runs"
    echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "cores=$(nproc)"
    echo "mem=$(awk '/^MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo)"
    echo "host_kernel=$(uname -r)"
    echo "load_start=$load_start"
    echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "accel=$accel_desc"
    echo "qemu=$("$qemu" --version | head -n 1) ($qemu)"
    echo "kernel=$kernel"
    echo "kernel_desc=$kernel_desc"
    echo "kdf_cmd=$(quote "$kdf_bin" run --timings --accel "$accel" --kernel "$kdf_kernel" "${kdf_args[@]}" -- true)"
    ((use_vng)) && echo "vng_cmd=$(quote vng "${vng_accel[@]}" -r "$vng_kernel" --exec true)"
    ((use_vng)) && echo "vng_version=$vng_version"
    echo "vng_dropped=$vng_dropped"
    floor_argv VARIANT "$accel" LOG
    echo "floor_cmd=$(quote "${floor[@]}" | sed "s|$work/|\$WORK/|g")"
    for t in "${floors[@]}"; do echo "label_$t=${floor_variant[$t]}"; done
    echo "target=$target"
    echo "target_unit=$target_unit"
    echo "target_note=$target_note"
    for t in "${!leftovers[@]}"; do echo "leftovers_$t=${leftovers[$t]}"; done
} >"$work/meta"
python3 "$helper" report "$work" "$json"
