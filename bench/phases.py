#!/usr/bin/env python3
"""Per-phase A/B timing of kdf builds: interleaved `kdf run --timings` runs of
two or more variants (a kdf binary, a kdf-init, extra run arguments) on one
kernel, and each phase's median and minimum in milliseconds.

  bench/phases.py -n 20 -k BUILD_DIR \\
      --variant old=/tmp/kdf-old:/tmp/kdf-init-old \\
      --variant new=target/release/kdf:target/x86_64-unknown-linux-musl/release/kdf-init \\
      -- true

A variant is NAME=KDF[:KDF_INIT[:ARGS]] (ARGS split at spaces, e.g.
'--machine q35'; a --kernel there replaces -k). For comparing changes to kdf itself; bench/boot.sh
compares kdf with virtme-ng and the floor.
"""
import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys

# Host marks are seconds since kdf started; guest marks are kernel uptime.
PHASES = {
    "total": lambda h, g: h["stopped"],
    "prep": lambda h, g: h["qemu started"],
    "qemu->k0": lambda h, g: h["guest up"] - g["channel"] - h["qemu started"],
    "k0->init": lambda h, g: g["init"],
    "init->chan": lambda h, g: g["channel"] - g["init"],
    "chan->plan": lambda h, g: g["plan"] - g["channel"],
    "plan->mods": lambda h, g: g["modules"] - g["plan"],
    "mods->mounted": lambda h, g: g["mounted"] - g["modules"],
    "mounted->cmd": lambda h, g: g["command"] - g["mounted"],
    "init->cmd": lambda h, g: g["command"] - g["init"],
    "cmd->ended": lambda h, g: h["command ended"] - h["command started"],
    "ended->stopped": lambda h, g: h["stopped"] - h["command ended"],
}


def marks(line):
    return {k.strip(): float(v) for k, v in re.findall(r"([a-z][a-z ]*) ([0-9.]+)s", line)}


def run(variant, kernel, command):
    kdf, init, extra = variant
    env = dict(os.environ)
    if init:
        env["KDF_INIT"] = init
    # A variant's own --kernel replaces -k.
    chosen = [] if "--kernel" in extra else ["--kernel", kernel]
    argv = [kdf, "run", "--timings", *chosen, *extra, "--", *command]
    out = subprocess.run(argv, env=env, capture_output=True, text=True)
    host = re.search(r"timings \(since kdf started\): (.*)", out.stderr)
    guest = re.search(r"guest uptime at: (.*)", out.stderr)
    if out.returncode != 0 or not host or not guest:
        sys.exit(f"bench/phases.py: {' '.join(map(shlex.quote, argv))} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    h, g = marks(host.group(1)), marks(guest.group(1))
    return {name: f(h, g) for name, f in PHASES.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--runs", type=int, default=15)
    p.add_argument("-k", "--kernel", required=True)
    p.add_argument("--variant", action="append", required=True, metavar="NAME=KDF[:KDF_INIT[:ARGS]]")
    p.add_argument("command", nargs="+")
    a = p.parse_args()
    variants = {}
    for spec in a.variant:
        name, _, rest = spec.partition("=")
        kdf, init, extra = (rest.split(":", 2) + ["", ""])[:3]
        variants[name] = (os.path.abspath(kdf), os.path.abspath(init) if init else "", shlex.split(extra))
    results = {name: [] for name in variants}
    for _ in range(a.runs):
        for name, variant in variants.items():
            results[name].append(run(variant, a.kernel, a.command))
    print(f"median/minimum ms over {a.runs} interleaved runs of: kdf run --kernel {a.kernel} -- {' '.join(a.command)}")
    for name, runs in results.items():
        cells = [f"{k} {statistics.median(r[k] for r in runs) * 1000:.0f}/{min(r[k] for r in runs) * 1000:.0f}" for k in PHASES]
        print(f"  {name}: " + "  ".join(cells))


if __name__ == "__main__":
    main()
