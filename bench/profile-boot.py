#!/usr/bin/env python3
"""Where a kernel's boot spends its time under TCG: boots the floor (the
kernel's vmlinux and bench/boot.sh's busybox /init, no kdf) with QEMU's gdb
stub, stops the guest at random moments, reads its instruction pointer, and
counts the kernel functions it was in, over many boots.

  bench/profile-boot.py -k BUILD_DIR [-n BOOTS] [--append ARGS] [-M MACHINE]

BUILD_DIR holds vmlinux (with symbols; booted with nokaslr). A stopped TCG
guest's clocks stop too, so the samples do not disturb its own time; but QEMU
needs tens of milliseconds after a continue before the vCPU runs again, so
each boot gives a few samples (mean interval --interval, 0.08 s) and the
profile needs tens of boots (-n, 40: ~600 samples, 2 minutes).
"""
import argparse
import bisect
import collections
import os
import random
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MARK = "kdf-bench-floor-init"


class Stub:
    """The few gdb remote protocol packets a sampler needs."""

    def __init__(self, port):
        for _ in range(200):
            try:
                self.sock = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.02)
        else:
            raise OSError(f"no gdb stub on port {port}")
        self.sock.settimeout(5)
        self.buf = b""
        self.sock.sendall(b"+")

    def send(self, cmd):
        csum = sum(cmd.encode()) & 0xFF
        self.sock.sendall(f"${cmd}#{csum:02x}".encode())

    def packet(self):
        while True:
            start = self.buf.find(b"$")
            end = self.buf.find(b"#", start)
            if start >= 0 and end >= 0 and len(self.buf) >= end + 3:
                body, self.buf = self.buf[start + 1 : end].decode(), self.buf[end + 3 :]
                self.sock.sendall(b"+")
                return body
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buf += data

    def stop(self):
        self.sock.sendall(b"\x03")
        while not self.packet().startswith(("T", "S")):
            pass

    def rip(self):
        self.send("g")  # rax..r15 (8 bytes each), then rip
        return int.from_bytes(bytes.fromhex(self.packet()[256:272]), "little")


def symbols(vmlinux):
    out = subprocess.run(["nm", "-n", vmlinux], capture_output=True, text=True, check=True).stdout
    syms = [(int(a, 16), n) for a, t, n in (l.split() for l in out.splitlines() if len(l.split()) == 3) if t in "tTwW"]
    return [a for a, _ in syms], [n for _, n in syms]


def name_of(rip, addrs, names):
    if rip < 1 << 47:
        return "(user space)"
    i = bisect.bisect_right(addrs, rip) - 1
    return names[i] if i >= 0 else hex(rip)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def boot(args, cpio, work, addrs, names, counts):
    port, log = free_port(), os.path.join(work, "serial.log")
    qemu = subprocess.Popen(
        ["qemu-system-x86_64", "-M", args.machine, "-accel", "tcg", "-cpu", "max", "-m", "1G",
         "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
         "-kernel", os.path.join(args.kernel, "vmlinux"), "-initrd", cpio,
         "-append", f"console=ttyS0 reboot=t panic=-1 quiet nokaslr {args.append}",
         "-serial", f"file:{log}", "-gdb", f"tcp:127.0.0.1:{port}", "-S"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        stub = Stub(port)
        stub.send("?")
        stub.packet()
        stub.send("c")
        while True:
            time.sleep(args.interval * (0.5 + random.random()))
            if os.path.exists(log) and MARK in open(log, errors="replace").read():
                return
            stub.stop()
            counts[name_of(stub.rip(), addrs, names)] += 1
            stub.send("c")
    except (EOFError, OSError):
        return
    finally:
        qemu.kill()
        qemu.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-k", "--kernel", required=True, help="kernel build directory (its vmlinux)")
    p.add_argument("-n", "--boots", type=int, default=40)
    p.add_argument(
        "--append",
        default="no_timer_check noapictimer",
        help="extra kernel arguments; add kdf's 'tsc_early_khz=N tsc=reliable' (kdf run --dry-run "
        "prints them) to profile the boot bench/boot.sh's floor runs, without the delay loop's calibration",
    )
    p.add_argument("-M", "--machine", default="microvm,acpi=off")
    p.add_argument("--interval", type=float, default=0.08, help="mean seconds between samples")
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args()
    busybox = subprocess.run(["sh", "-c", "command -v busybox"], capture_output=True, text=True).stdout.strip()
    if not busybox:
        sys.exit("a static busybox is needed for the floor's /init: apt install busybox-static")
    addrs, names = symbols(os.path.join(args.kernel, "vmlinux"))
    counts = collections.Counter()
    with tempfile.TemporaryDirectory() as work:
        cpio = os.path.join(work, "floor.cpio")
        subprocess.run([sys.executable, os.path.join(HERE, "boot.py"), "cpio", cpio, busybox, MARK], check=True)
        for _ in range(args.boots):
            boot(args, cpio, work, addrs, names, counts)
    total = sum(counts.values())
    print(f"{total} samples over {args.boots} boots of {args.kernel} (-M {args.machine}, {args.append})")
    for name, n in counts.most_common(args.top):
        print(f"{n:6d} {100 * n / max(total, 1):5.1f}%  {name}")


if __name__ == "__main__":
    main()
