# buildQemuCmd: `runvm`, which boots the Nix-built kernel and initramfs with
# `kdf run` (virtiofs shares, the host's / read-only, KVM when it really boots
# Linux, else TCG). The command starts in a store directory whose modules/
# holds the Nix-built modules (unstripped, symlinks into /nix/store, which the
# guest sees through the shared /), so `insmod modules/helloworld.ko` works.
# The host's working directory is shared read-write at its own path.
# `nokaslr` keeps the kernel where vmlinux's symbols say it is, for rungdb.
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
}:

{
  # The kernel: a buildKernel result.
  kernel,
  # The initramfs: a buildInitramfs result for the same kernel.
  initramfs,
  # Module derivations to put in the VM's modules/ directory.
  modules ? [ ],
}:

let
  # A module's unstripped .ko files (buildCModule/buildRustModule), or its
  # lib/modules tree (any other module package).
  moduleFiles = m: m.debugModulesDir or "${m}/lib/modules";

  workdir =
    runCommand "kdf-vm-workdir"
      {
        passthru = { inherit modules; };
      }
      ''
        mkdir -p "$out/modules"
        for dir in ${lib.escapeShellArgs (map moduleFiles modules)}; do
          find "$dir" \( -name '*.ko' -o -name '*.ko.*' \) -exec ln -s -t "$out/modules" {} +
        done
      '';
in
writeShellApplication {
  name = "runvm";
  runtimeInputs = [ kdf ];
  text = ''
    exec kdf run \
      --kernel ${kernel}/${kernel.target or "bzImage"} \
      --initramfs ${initramfs}/initrd \
      --chdir ${workdir} \
      --cmdline nokaslr \
      "$@"
  '';
  passthru = {
    inherit kernel initramfs workdir;
  };
}
