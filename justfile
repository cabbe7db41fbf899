# kdf's everyday commands; each is a thin wrapper around a script or kdf.

# Recipes get their arguments as "$@", quoting kept.
set positional-arguments

# Install what kdf needs and kdf itself (fresh Debian/Ubuntu machine).
setup:
    scripts/setup.sh

# Boot a kernel (inside a kernel tree its build, else the newest installed) with the current directory and run ARGS (a shell without); leading -flags go to kdf run (`just run -d`, `just run --debug-wait -d uname -a`).
run *ARGS:
    #!/usr/bin/env bash
    set -euo pipefail
    flags=()
    while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do flags+=("$1"); shift; done
    exec kdf run "${flags[@]}" ${1+--} "$@"

# Attach gdb to the VM `just run -d` started from this directory (ARGS go to kdf gdb, e.g. `--break-on-warn`).
debug *ARGS:
    kdf gdb "$@"

# The whole test suite.
test *ARGS:
    scripts/test.sh {{ARGS}}

# Boot-time benchmark against virtme-ng and the floor.
bench:
    bench/boot.sh

# The in-tree loop (kdf run --build after a one-file change) timed in a kernel tree.
bench-loop *ARGS:
    bench/loop.sh {{ARGS}}
