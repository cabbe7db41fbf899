# rungdb: `kdf gdb` attached to the VM that `runvm -d` started from this
# directory, with the Nix-built kernel's vmlinux and gdb scripts (lx-dmesg,
# lx-ps, lx-symbols, ...), the kernel's and the modules' sources, and
# lx-symbols-nix (lx-symbols-runtime over the Nix-built modules).
#
#   rungdb                            attach
#   rungdb -ex 'b do_sys_openat2'     arguments go to gdb
#
# A template: build/gdb-cmd.nix fills the @...@ placeholders with store
# paths, kdf/tests/nix_scripts.rs with local ones and runs it.
exec @kdf@ gdb --kernel @kernel@ @moduleDirs@ -- -x @gdbinit@ "$@"
