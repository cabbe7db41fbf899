# buildQemuCmd: `runvm`, a thin wrapper over `kdf run` (virtiofs shares, the
# host's / read-only, KVM when it really boots Linux, else TCG) with store
# paths as arguments: the Nix-built kernel, kdf's initramfs, and a working
# directory whose modules/ holds the Nix-built modules for
# `insmod modules/helloworld.ko`. Its text is build/templates/runvm.sh,
# filled here (kdf/tests/nix_scripts.rs fills and runs the same template with
# local paths); the working directory is build/lib/vm-workdir.sh.
#
#   runvm                      an interactive shell in the VM
#   runvm -d                   the same, with a GDB stub on a free port (it
#                              prints it; rungdb or `kdf gdb` finds it)
#   runvm -- uname -r          one command; runvm exits with its status
{
  lib,
  runCommand,
  writeShellApplication,
  kdf,
  buildInitramfs,
}:

{
  # The kernel: a buildKernel result.
  kernel,
  # Module derivations whose .ko files the VM's modules/ directory holds.
  modules ? [ ],
  # Load every module in modules/ before the command (`kdf run --module`),
  # instead of leaving them to insmod.
  preload ? false,
  # The initramfs: a buildInitramfs result for the same kernel (modules given
  # to it are loaded at boot: leave out the ones in `modules`).
  initramfs ? buildInitramfs { inherit kernel; },
}:

assert lib.assertMsg (builtins.isList modules && builtins.isBool preload) ''
  buildQemuCmd: `modules` must be a list of module derivations and `preload`
  a boolean, e.g. modules = [ helloworld ]; preload = true;
'';

let
  fill = import ./lib/template.nix;

  # A module's unstripped .ko files (buildCModule/buildRustModule), or its
  # lib/modules tree (any other module package).
  moduleFiles = m: m.debugModulesDir or "${m}/lib/modules";

  # Each package's directory name under modules/, used only for a .ko name
  # that two packages share: its name, or, when several packages have that
  # name, its name and its place in `modules` ("helloworld-2").
  names = map (m: m.pname or m.name) modules;
  uniqueName =
    i: name:
    if builtins.length (builtins.filter (n: n == name) names) > 1 then
      "${name}-${toString (i + 1)}"
    else
      name;
  entries = builtins.genList (i: {
    name = uniqueName i (builtins.elemAt names i);
    dir = moduleFiles (builtins.elemAt modules i);
  }) (builtins.length modules);

  workdir =
    runCommand "kdf-vm-workdir"
      {
        passthru = { inherit modules entries; };
      }
      ''
        bash ${./lib/vm-workdir.sh} "$out" ${
          lib.escapeShellArgs (
            builtins.concatLists (
              map (e: [
                e.name
                e.dir
              ]) entries
            )
          )
        }
      '';
in
writeShellApplication {
  name = "runvm";
  text = fill ./templates/runvm.sh {
    kdf = lib.escapeShellArg (lib.getExe kdf);
    kernel = lib.escapeShellArg "${kernel}/${kernel.target or "bzImage"}";
    initramfs = lib.escapeShellArg "${initramfs}/initrd";
    workdir = lib.escapeShellArg "${workdir}";
    preload = if preload then "true" else "false";
  };
  passthru = {
    inherit
      kernel
      initramfs
      workdir
      preload
      ;
  };
}
