# buildGdbCmd: `rungdb`, gdb attached to a VM's GDB stub (`runvm -d`) with
# everything in place: the kernel's sources on gdb's search path, the
# unstripped vmlinux, the kernel's gdb scripts (lx-dmesg, lx-ps, lx-symbols,
# ...) and `lx-symbols-nix`, which runs lx-symbols over the Nix-built modules'
# store paths so their symbols load once they are in the guest.
#
#   rungdb                     attach to the VM `runvm -d` started from this
#                              directory (KDF_GDB_PORT=PORT for another stub)
#   rungdb -ex 'b do_sys_openat2'   extra gdb arguments come after
{
  lib,
  writeText,
  writeShellApplication,
  gdb,
  kdf,
}:

{
  # The kernel: a buildKernel result (the same one runvm boots).
  kernel,
  # Module derivations whose symbols lx-symbols-nix loads.
  modules ? [ ],
}:

assert lib.assertMsg (kernel ? dev) ''
  buildGdbCmd: `kernel` has no dev output (no unstripped vmlinux, no gdb
  scripts). Pass a buildKernel result whose config has CONFIG_MODULES=y.
'';

let
  kdir = "${kernel.dev}/lib/modules/${kernel.modDirVersion}/build";
  # buildKernel keeps the whole tree here; nixpkgs' kernels keep headers only.
  sourceDir = kernel.sourceDir or "${kernel.dev}/lib/modules/${kernel.modDirVersion}/source";

  # Unstripped .ko files of kdf's module builders, else the whole package.
  moduleDirs = map (m: m.debugModulesDir or "${m}") modules;
  # Module sources: kbuild records absolute build-sandbox paths, which gdb
  # cannot open; it falls back to each file's base name in these directories.
  moduleSources = lib.filter (s: s != null) (map (m: m.src or null) modules);

  gdbinit = writeText "kdf-gdbinit" ''
    # Sources: debug info names kernel files relative to the build directory
    # ("../kernel/fork.c"), which source/build resolves (buildKernel makes it).
    directory ${sourceDir}
    directory ${sourceDir}/build
    ${lib.concatMapStrings (s: "directory ${s}\n") moduleSources}
    add-auto-load-safe-path ${kdir}
    file ${kernel.dev}/vmlinux
    source ${kdir}/vmlinux-gdb.py

    define lx-symbols-nix
      lx-symbols ${lib.concatStringsSep " " moduleDirs}
    end
    document lx-symbols-nix
    Load the symbols of vmlinux and of the Nix-built modules (lx-symbols over their store paths).
    end
  '';
in
writeShellApplication {
  name = "rungdb";
  runtimeInputs = [
    gdb
    kdf
  ];
  text = ''
    # `runvm -d` listens on a free port; its run's record names it.
    port="''${KDF_GDB_PORT:-$(kdf gdb --print-port)}"
    exec gdb -q -x ${gdbinit} -ex "target remote :$port" "$@"
  '';
  passthru = {
    inherit kernel modules gdbinit;
  };
}
