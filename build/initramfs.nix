# buildInitramfs: kdf's initramfs for a kernel, made by kdf itself
# (`kdf build initramfs`), so Nix and the CLI ship the same /init and the same
# archive: kdf-init as /init, the modules kdf decides the VM needs, and
# `modules`, loaded by kdf-init at boot. Uncompressed newc, reproducible
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
  # lib/modules/**/*.ko kdf-init loads at boot.
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
    args=()
    for dir in ${lib.escapeShellArgs (map (m: "${m}/lib/modules") modules)}; do
      if [ ! -d "$dir" ]; then
        echo "buildInitramfs: $dir does not exist; is ''${dir%/lib/modules} a kernel module package?" >&2
        exit 1
      fi
      while IFS= read -r -d "" ko; do
        args+=(--module "$ko")
      done < <(find "$dir" -name '*.ko' -print0 -o -name '*.ko.[gx]z' -print0 -o -name '*.ko.zst' -print0 | sort -z)
    done
    mkdir -p "$out"
    kdf build initramfs \
      --kernel ${kernel}/${kernel.target or "bzImage"} \
      --init ${lib.getExe kdf-init} \
      "''${args[@]}" \
      -o "$out/initrd"
  ''
