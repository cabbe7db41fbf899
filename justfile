# kdf's everyday commands; each is a thin wrapper around a script or kdf.

# Install what kdf needs and kdf itself (fresh Debian/Ubuntu machine).
setup:
    scripts/setup.sh

# Boot a kernel (inside a kernel tree its build, else the newest installed) with the current directory and run ARGS (a shell without).
run *ARGS:
    kdf run {{ if ARGS == "" { "" } else { "-- " + ARGS } }}

# Boot with a GDB stub on 127.0.0.1:1234 (attach: gdb vmlinux -ex "target remote :1234").
debug *ARGS:
    kdf run --debug {{ if ARGS == "" { "" } else { "-- " + ARGS } }}

# The whole test suite.
test *ARGS:
    scripts/test.sh {{ARGS}}

# Boot-time benchmark against virtme-ng and the floor.
bench:
    bench/boot.sh

# The in-tree loop (kdf run --build after a one-file change) timed in a kernel tree.
bench-loop *ARGS:
    bench/loop.sh {{ARGS}}
