#!/bin/sh
# Usage: check-config.sh REQUESTED CONFIG
#
# Fails, naming each option, when CONFIG (a kernel .config) does not have what
# REQUESTED (fragment lines: CONFIG_X=value or "# CONFIG_X is not set") asks
# for. Kconfig silently drops a value whose dependencies are off; this is the
# guarantee nixpkgs' generate-config.pl gives, for kdf's fragments.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: check-config.sh REQUESTED CONFIG" >&2
    exit 2
fi

awk '
    # Both files are read the same way: option -> value, "n" for "is not set".
    function parse(line, kv) {
        if (match(line, /^# CONFIG_[A-Za-z0-9_]+ is not set$/)) {
            kv["name"] = substr(line, 3, length(line) - 13)
            kv["value"] = "n"
            return 1
        }
        if (match(line, /^CONFIG_[A-Za-z0-9_]+=/)) {
            kv["name"] = substr(line, 1, RLENGTH - 1)
            kv["value"] = substr(line, RLENGTH + 1)
            return 1
        }
        return 0
    }
    FNR == NR {
        if (parse($0, kv)) { want[kv["name"]] = kv["value"]; order[++n] = kv["name"] }
        next
    }
    { if (parse($0, kv)) got[kv["name"]] = kv["value"] }
    END {
        bad = 0
        for (i = 1; i <= n; i++) {
            name = order[i]
            if (seen[name]++) continue
            w = want[name]
            g = (name in got) ? got[name] : "unset"
            if (w == g || (w == "n" && g == "unset")) continue
            if (g == "unset")
                g = "unset (not in this kernel, or an option it depends on is off)"
            printf "%s: requested %s, got %s\n", name, w, g > "/dev/stderr"
            bad++
        }
        if (bad) {
            printf "error: %d requested kernel option(s) did not land in %s\n", bad, ARGV[2] > "/dev/stderr"
            print "hint: enable what each depends on (see its \"depends on\" in Kconfig or `make menuconfig`), or drop it from the fragment" > "/dev/stderr"
            exit 1
        }
    }
' "$1" "$2"
