# rungdb's additions to `kdf gdb`, which loads vmlinux and the kernel's gdb
# scripts and defines lx-symbols-runtime over rungdb's --module-dir arguments.
#
# Sources: debug info names kernel files relative to the build directory
# ("../kernel/fork.c"), which source/build resolves (buildKernel makes it);
# kbuild records a module's files by their build-sandbox paths, which gdb
# cannot open, so it falls back to each file's base name in the module's
# source directory.
@directories@
define lx-symbols-nix
  lx-symbols-runtime
end
document lx-symbols-nix
Load the symbols of the Nix-built modules the VM has loaded (lx-symbols-runtime over their directories).
end
