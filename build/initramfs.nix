# buildInitramfs: kdf's initramfs for a kernel, made by kdf itself
# (`kdf build initramfs`, in build/lib/initramfs.sh), so Nix and the CLI ship
# the same /init and the same archive: kdf-init as /init, the modules kdf
# decides the VM needs, and `modules`, loaded by kdf-init at boot (leave them
# out for modules you want to insmod yourself: loaded twice is "File exists"). Uncompressed newc, reproducible
# (entries sorted, uid/gid/mtime 0): the fastest to unpack under TCG.
#
# kdf takes the kernel's own modules from /lib/modules/<release>, which the
# build sandbox does not have: the kernel needs the VM drivers (virtio_pci,
# virtio_console, virtiofs) built in, as configs/vm.config does for kdf's
# profiles.
{
  lib,
  runCommand,
  kdf,
  kdf-init,
}:

{
  # The kernel: a buildKernel result (its bzImage gives kdf the release).
  kernel,
  # Module derivations (buildCModule, buildRustModule, nixpkgs' own) whose
  # lib/modules/**/*.ko kdf-init loads at boot (preloading them).
  modules ? [ ],
}:

assert lib.assertMsg (builtins.isList modules) ''
  buildInitramfs: `modules` must be a list of module derivations,
  e.g. modules = [ helloworld ];
'';

runCommand "kdf-initramfs-${kernel.version or "kernel"}"
  {
    nativeBuildInputs = [ kdf ];
    passthru = {
      inherit kernel modules;
    };
  }
  ''
    # kdf caches what it extracts from the kernel image; HOME is not writable.
    export XDG_CACHE_HOME="$TMPDIR/cache"
    mkdir -p "$out"
    bash ${./lib/initramfs.sh} \
      ${kernel}/${kernel.target or "bzImage"} \
      ${lib.getExe kdf-init} \
      "$out/initrd" \
      ${lib.escapeShellArgs (map (m: "${m}/lib/modules") modules)}
  ''
