# buildGdbCmd: `rungdb`, a thin wrapper over `kdf gdb` with store paths as
# arguments: the kernel's build directory (vmlinux, vmlinux-gdb.py and the
# kernel's gdb scripts: lx-dmesg, lx-ps, lx-symbols, ...), each module's
# unstripped .ko directory (`--module-dir`, which kdf gdb's
# lx-symbols-runtime searches), and a gdb file with the kernel's and the
# modules' source directories and `lx-symbols-nix` (lx-symbols-runtime over
# the Nix-built modules). kdf gdb finds the VM `runvm -d` started from the
# same directory. Its text is build/templates/rungdb.sh and the gdb file
# build/templates/rungdb.gdb, filled here (kdf/tests/nix_scripts.rs fills
# and runs the same templates with local paths).
#
#   rungdb                          attach
#   rungdb -ex 'b do_sys_openat2'   arguments go to gdb
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
  fill = import ./lib/template.nix;

  kdir = "${kernel.dev}/lib/modules/${kernel.modDirVersion}/build";
  # buildKernel keeps the whole tree here; nixpkgs' kernels keep headers only.
  sourceDir = kernel.sourceDir or "${kernel.dev}/lib/modules/${kernel.modDirVersion}/source";

  # Unstripped .ko files of kdf's module builders, else the whole package.
  moduleDirs = map (m: m.debugModulesDir or "${m}") modules;
  # Module sources, where gdb looks up a file's base name.
  moduleSources = lib.filter (s: s != null) (map (m: m.src or null) modules);

  gdbinit = writeText "rungdb.gdb" (
    fill ./templates/rungdb.gdb {
      directories = lib.concatMapStrings (d: "directory ${d}\n") (
        [
          sourceDir
          "${sourceDir}/build"
        ]
        ++ moduleSources
      );
    }
  );
in
writeShellApplication {
  name = "rungdb";
  # kdf gdb runs the gdb on PATH.
  runtimeInputs = [ gdb ];
  text = fill ./templates/rungdb.sh {
    kdf = lib.escapeShellArg (lib.getExe kdf);
    kernel = lib.escapeShellArg kdir;
    moduleDirs = lib.escapeShellArgs (
      builtins.concatLists (
        map (d: [
          "--module-dir"
          d
        ]) moduleDirs
      )
    );
    gdbinit = lib.escapeShellArg "${gdbinit}";
  };
  passthru = {
    inherit kernel modules gdbinit;
  };
}
