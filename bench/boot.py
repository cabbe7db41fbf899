#!/usr/bin/env python3
"""Helpers for bench/boot.sh (stdlib only).

  boot.py vmlinux IMAGE OUT      extract a bzImage's vmlinux to OUT; prints "pvh"
                                 or "no-pvh" (OUT is written either way)
  boot.py has-pvh ELF            exit 0 if ELF has a PVH entry note
  boot.py cpio OUT BUSYBOX MARK  write the floor's initramfs: busybox /init that
                                 prints MARK and the uptime, then reboots at once
  boot.py static ELF             exit 0 if ELF is statically linked (no PT_INTERP)
  boot.py reap PREFIX            kill our processes whose environment has
                                 KDF_BENCH_RUN=PREFIX...; prints how many
  boot.py report DIR JSON        print the result table from DIR/meta, DIR/times;
                                 also write it to JSON unless that is ""
"""

import bz2
import gzip
import json
import lzma
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import time
import zlib

# Fewer interleaved runs than this give numbers, not a verdict (issue 12).
MIN_RUNS = 15

# --- kernel images -----------------------------------------------------------

# Same magics as the kernel's scripts/extract-vmlinux, in its order.
MAGICS = [
    (b"\x1f\x8b\x08", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"\x5d\x00\x00\x00", "lzma"),
    (b"\x89\x4c\x5a", "lzo"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
]


def bzimage_payload(data):
    """The compressed kernel inside a bzImage (boot protocol >= 2.08)."""
    if data[0x202:0x206] != b"HdrS":
        raise SystemExit("not a bzImage (no HdrS header)")
    setup_sects = data[0x1F1] or 4
    offset, length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + offset
    return data[start:start + length]


def decompress(payload):
    for magic, kind in MAGICS:
        if payload.startswith(magic):
            break
    else:
        raise SystemExit("unknown kernel payload compression")
    if kind == "gzip":
        return zlib.decompressobj(wbits=31).decompress(payload)
    if kind in ("xz", "lzma"):
        # The x86 BCJ filter the kernel uses is handled by liblzma.
        fmt = lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE
        return lzma.LZMADecompressor(format=fmt).decompress(payload)
    if kind == "bzip2":
        return bz2.BZ2Decompressor().decompress(payload)
    tool = {"zstd": "zstd", "lz4": "lz4", "lzo": "lzop"}[kind]
    if not shutil.which(tool):
        raise SystemExit(f"{kind} kernel payload: install {tool} to extract it")
    # The payload has a 4-byte size appended; the tools stop at the frame end.
    r = subprocess.run([tool, "-dc"], input=payload, capture_output=True)
    if not r.stdout:
        raise SystemExit(f"{tool} failed: {r.stderr.decode(errors='replace')}")
    return r.stdout


def has_pvh(elf):
    """True if the ELF has a Xen PHYS32_ENTRY note (what QEMU's PVH boot uses)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == 18:  # XEN_ELFNOTE_PHYS32_ENTRY
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def cmd_vmlinux(image, out):
    with open(image, "rb") as f:
        elf = decompress(bzimage_payload(f.read()))
    tmp = f"{out}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(elf)
    os.replace(tmp, out)
    print("pvh" if has_pvh(elf) else "no-pvh")


def cmd_static(path):
    with open(path, "rb") as f:
        elf = f.read()
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        sys.exit(1)
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    types = [struct.unpack_from("<I", elf, phoff + i * phentsize)[0] for i in range(phnum)]
    sys.exit(1 if 3 in types else 0)  # PT_INTERP: dynamically linked


def cmd_has_pvh(path):
    with open(path, "rb") as f:
        sys.exit(0 if has_pvh(f.read()) else 1)


# --- the floor's initramfs -------------------------------------------------------

def newc_entry(name, mode, data=b"", ino=1):
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
    head = b"070701" + b"".join(b"%08X" % v for v in fields) + name.encode() + b"\0"
    pad = lambda n: b"\0" * (-n % 4)
    return head + pad(len(head)) + data + pad(len(data))


def cmd_cpio(out, busybox, mark):
    with open(busybox, "rb") as f:
        bb = f.read()
    # The mark (with the kernel's uptime at /init) proves the run reached /init:
    # QEMU exits 0 on a kernel panic too (panic=-1 resets, -no-reboot exits).
    init = (
        "#!/bin/busybox sh\n"
        "/bin/busybox mount -t proc proc /proc\n"
        "read up idle < /proc/uptime\n"
        f"echo {mark} $up\n"
        "exec /bin/busybox reboot -f\n"
    ).encode()
    entries = [
        newc_entry("bin", 0o40755, ino=1),
        newc_entry("bin/busybox", 0o100755, bb, ino=2),
        newc_entry("dev", 0o40755, ino=3),
        newc_entry("init", 0o100755, init, ino=4),
        newc_entry("proc", 0o40755, ino=5),
        newc_entry("TRAILER!!!", 0, ino=0),
    ]
    with open(out, "wb") as f:
        f.write(b"".join(entries))


# --- leftover processes ----------------------------------------------------------

def marked(prefix):
    want = f"KDF_BENCH_RUN={prefix}".encode()
    me, uid = os.getpid(), os.getuid()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            if os.stat(f"/proc/{d}").st_uid != uid:
                continue
            with open(f"/proc/{d}/environ", "rb") as f:
                if any(v.startswith(want) for v in f.read().split(b"\0")):
                    pids.append(int(d))
        except OSError:
            pass
    return pids


def cmd_reap(prefix):
    """SIGTERM, up to 2 s to go, then SIGKILL; prints how many there were."""
    found = marked(prefix)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in marked(prefix):
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        for _ in range(20):
            if not marked(prefix):
                print(len(found))
                return
            time.sleep(0.1)
    print(len(found))


# --- the report ------------------------------------------------------------------

TIMINGS = re.compile(r"timings \(since kdf started\): (.*)")
GUEST = re.compile(r"guest uptime at: (.*)")
MARK = re.compile(r"\s*(.+?) ([0-9.]+)s$")


def marks(text):
    return [(m.group(1), float(m.group(2))) for m in map(MARK.match, text.split(",")) if m]


def read_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            meta[k] = v
    return meta


def ordered_medians(runs):
    """Median of each named mark over runs, in first-seen order."""
    names, values = [], {}
    for run in runs:
        for name, v in run:
            if name not in values:
                names.append(name)
                values[name] = []
            values[name].append(v)
    return [(n, statistics.median(values[n]), len(values[n])) for n in names]


def verdict(ratio, target):
    return "PASS" if ratio <= target else "MISS"


def read_kdf_timings(d, walls):
    """Per run: kdf's host marks, guest marks and phases (runs with --timings)."""
    host, guest, phases = [], [], []
    for i, wall in enumerate(walls, 1):
        with open(os.path.join(d, f"kdf.{i}.err"), errors="replace") as f:
            text = f.read()
        h = marks(m.group(1)) if (m := TIMINGS.search(text)) else []
        g = marks(m.group(1)) if (m := GUEST.search(text)) else []
        if h:
            host.append(h)
            guest.append(g)
            phases.append(kdf_phases(h, g, wall))
    return host, guest, phases


def cmd_report(d, json_path=""):
    meta = read_meta(os.path.join(d, "meta"))
    times, at_init = {}, {}
    with open(os.path.join(d, "times")) as f:
        for line in f:
            tool, secs = line.split()
            times.setdefault(tool, []).append(float(secs))
    path = os.path.join(d, "floor_uptime")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                tool, up = line.split()
                at_init.setdefault(tool, []).append(float(up))
    host, guest, phases = read_kdf_timings(d, times["kdf"])
    inits = [dict(g)["init"] for g in guest if "init" in dict(g)]
    if inits:
        at_init["kdf"] = inits
    med = {t: statistics.median(v) for t, v in times.items()}
    floors = [t for t in times if t.startswith("floor-")]
    floor = min(floors, key=lambda t: med[t])

    p = print
    p(f"kdf boot benchmark: `true` in a VM, {meta['runs']} interleaved runs each "
      f"(after 1 warm-up run each, not counted)")
    p(f"  machine: {meta['cpu']}, {meta['cores']} cores, {meta['mem']}, host kernel {meta['host_kernel']}")
    p(f"  load:    load average {meta['load_start']} at start, {meta['load_end']} at end")
    p(f"  accel:   {meta['accel']}   QEMU: {meta['qemu']}")
    p(f"  kernel:  {meta['kernel']} ({meta['kernel_desc']})")
    p(f"  kdf:     {meta['kdf_cmd']}")
    if "vng" in times:
        p(f"  vng:     {meta['vng_cmd']}  (virtme-ng {meta['vng_version']}, its venv's bin on PATH)")
    p(f"  floor:   {meta['floor_cmd']}")
    p(f"           (-M VARIANT tried: {'; '.join(meta['label_' + t] for t in floors)}; "
      f"/init = static busybox that reboots)")
    p("")
    p(f"  {'wall seconds':<36}{'median':>8}{'min':>8}{'max':>8}{'runs':>6}{'at /init':>10}{'rest':>8}")
    label = {"kdf": "kdf run -- true", "vng": "vng --exec true"}
    for tool in ["kdf", "vng"] + floors:
        if tool not in times:
            continue
        v = times[tool]
        name = label.get(tool) or f"floor -M {meta['label_' + tool]}"
        if tool in at_init:
            init = statistics.median(at_init[tool])
            up = f"{init:10.2f}{med[tool] - init:8.2f}"
        else:
            up = f"{'-':>10}{'-':>8}"
        star = "  <- floor" if tool == floor else ""
        p(f"  {name:<36}{med[tool]:8.2f}{min(v):8.2f}{max(v):8.2f}{len(v):6d}{up}{star}")
    p("  (at /init: median kernel uptime when /init started; rest: median wall - that, i.e.")
    p("   QEMU start, firmware, loading the kernel, exit, and for kdf also its init's work)")
    p("")
    mins = {t: min(v) for t, v in times.items()}
    low = min(floors, key=lambda t: mins[t])
    kf, kf_min = med["kdf"] / med[floor], mins["kdf"] / mins[low]
    diff, diff_min = med["kdf"] - med[floor], mins["kdf"] - mins[low]
    enough = int(meta["runs"]) >= MIN_RUNS
    target, unit = meta["target"], meta["target_unit"]
    figure = kf_min if unit == "x" else diff_min
    met = figure <= float(target)
    shown = verdict(figure, float(target)) if enough else f"no verdict: fewer than {MIN_RUNS} runs"
    p(f"  kdf / floor  {kf:5.2f}x   (medians)")
    p(f"  kdf / floor  {kf_min:5.2f}x   (minimums)" + (f"  target <= {float(target):.2f}x  {shown}" if unit == "x" else ""))
    p(f"  kdf - floor  {diff:+5.2f} s  (medians), {diff_min:+5.2f} s (minimums)"
      + (f"  target <= {float(target):.2f} s (minimums)  {shown}" if unit == "s" else ""))
    kv = None
    if "vng" in times:
        kv = med["kdf"] / med["vng"]
        p(f"  kdf / vng    {kv:5.2f}x   (medians; virtme-ng {meta['vng_version']})")
    elif meta.get("vng_dropped"):
        p(f"  kdf / vng    not measured: {meta['vng_dropped'].removeprefix('bench: ')}")
    p(f"  targets: {meta['target_note']}")
    p("  (the verdict uses the minimums: on these noisy machines the median of the same")
    p("   contender moves by a third between runs while its minimum holds still)")
    for tool in ("kdf", "vng", "floor"):
        n = int(meta.get(f"leftovers_{tool}", "0"))
        if n:
            p(f"  note: {tool} left {n} process(es) running after it exited (killed by the benchmark)")
    kdf_breakdown(host, guest, phases)
    if json_path:
        label = lambda t: label_of(meta, t)
        doc = {
            "runs": int(meta["runs"]),
            "accel": meta["accel"],
            "kernel": meta["kernel"],
            "machine": {k: meta[k] for k in ("cpu", "cores", "mem", "host_kernel", "load_start", "load_end")},
            "contenders": {
                t: {"label": label(t), "median": med[t], "min": mins[t], "max": max(v), "runs": len(v),
                    "at_init_median": statistics.median(at_init[t]) if t in at_init else None}
                for t, v in times.items()
            },
            "floor": {"by_median": label(floor), "by_min": label(low)},
            "kdf_over_floor": {"median": kf, "min": kf_min},
            "kdf_minus_floor_s": {"median": diff, "min": diff_min},
            "kdf_over_vng": kv,
            "target": {"value": float(target), "unit": unit, "figure": "min", "met": met if enough else None,
                       "note": meta["target_note"]},
            "kdf_phases_median": {n: v for n, v, _ in ordered_medians(phases)},
            "kdf_host_marks_median": {n: v for n, v, _ in ordered_medians(host)},
            "kdf_guest_marks_median": {n: v for n, v, _ in ordered_medians(guest)},
        }
        with open(json_path, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        p(f"  (JSON: {json_path})")


def label_of(meta, tool):
    return {"kdf": "kdf", "vng": "vng"}.get(tool) or f"floor -M {meta['label_' + tool]}"


def kdf_phases(host, guest, wall):
    """One run's timeline as (phase, seconds) pairs that add up to its wall time.

    Guest marks are kernel uptimes; kdf-init sends `Ready` right after its
    "command" mark and kdf marks "command started" when it arrives, so that pair
    puts kernel uptime 0 on kdf's clock (approximately: the uptime clock starts
    early in the kernel's boot, not at its entry point).
    """
    h, g = dict(host), dict(guest)
    timeline = []
    anchored = "command started" in h and "command" in g
    zero = h["command started"] - g["command"] if anchored else None
    for name, t in host:
        if anchored and name in ("guest up", "command started"):
            continue
        if anchored and t > zero and not any(n == "kernel uptime 0" for n, _ in timeline):
            timeline.append(("kernel uptime 0", zero))
            timeline += [(f"guest {n}", zero + u) for n, u in guest]
        timeline.append((name, t))
    if anchored and not any(n == "kernel uptime 0" for n, _ in timeline):
        timeline.append(("kernel uptime 0", zero))
        timeline += [(f"guest {n}", zero + u) for n, u in guest]
    timeline.append(("kdf exited", wall))
    phases, prev = [], ("kdf started", 0.0)
    for name, t in timeline:
        phases.append((f"{prev[0]} -> {name}", t - prev[1]))
        prev = (name, t)
    return phases


def kdf_breakdown(host, guest, phases):
    p = print
    p("")
    if not host:
        p("  kdf printed no --timings line: no breakdown")
        return
    p(f"  kdf's breakdown (--timings), medians over {len(host)} runs:")
    p("    host, s since kdf started: " + ", ".join(f"{n} {v:.3f}" for n, v, _ in ordered_medians(host)))
    gm = ordered_medians(guest)
    if gm:
        p("    guest, kernel uptime:      " + ", ".join(f"{n} {v:.3f}" for n, v, _ in gm))
    p("    where the time goes (median of each phase; the medians need not add up):")
    for name, v, _ in ordered_medians(phases):
        p(f"      {name:<44}{v:7.3f}")


def main(argv):
    cmds = {
        "vmlinux": (cmd_vmlinux, 2),
        "has-pvh": (cmd_has_pvh, 1),
        "static": (cmd_static, 1),
        "cpio": (cmd_cpio, 3),
        "reap": (cmd_reap, 1),
        "report": (cmd_report, 2),
    }
    if len(argv) < 1 or argv[0] not in cmds or len(argv) - 1 != cmds[argv[0]][1]:
        sys.exit(__doc__)
    fn, _ = cmds[argv[0]]
    fn(*argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
