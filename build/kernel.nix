# buildKernel: a kernel for debugging, built by nixpkgs' linuxManualConfig
# (pkgs/os-specific/linux/kernel/build.nix) from a buildKernelConfig .config,
# with three changes for kdf:
#
# - the dev output keeps the whole source tree: nixpkgs prunes
#   lib/modules/<v>/source to headers, Makefiles and scripts/, and then gdb's
#   `list` finds no .c file and rust-analyzer no kernel crate;
# - vmlinux-gdb.py and vmlinux sit at the top of the dev build dir, where the
#   kernel's own build puts them (vmlinux-gdb.py adds <its dir>/scripts/gdb to
#   Python's path);
# - nothing is stripped, so lx-symbols finds the in-tree modules' debug info.
#
# The .config is verified again after the build's own `make oldconfig`: what
# buildKernelConfig checked must still hold with the build's toolchain.
{
  lib,
  linuxManualConfig,
}:

{
  # The kernel source: the same tarball or directory given to buildKernelConfig.
  src,
  # The kernel version, e.g. pkgs.linux_latest.version.
  version,
  # The .config: a buildKernelConfig result, or a path to a .config file.
  configfile,
  # The module directory name (kernel.release); default: version padded to x.y.z.
  modDirVersion ? null,
  # Patches ([ { name; patch; } ]): the same list given to buildKernelConfig.
  kernelPatches ? [ ],
  # Extra make flags: the same list given to buildKernelConfig.
  extraMakeFlags ? [ ],
  # Keep the whole source tree in the dev output (gdb's `list`, rust-analyzer).
  keepSource ? true,
}:

let
  modDir = if modDirVersion == null then lib.versions.pad 3 version else modDirVersion;

  # build.nix only reads CONFIG_MODULES and CONFIG_RUST from `config` (to add
  # the modules/dev outputs and the Rust toolchain). Without it and without
  # import-from-derivation it takes a derivation's config to be empty: no
  # modules output, no Rust. buildKernelConfig results carry their settings,
  # so nothing has to be read from the built .config.
  settings = configfile.settings or null;
  option = name: settings.${name}.value or "n";
  config =
    if settings != null then
      {
        CONFIG_MODULES = option "MODULES";
        CONFIG_RUST = option "RUST";
      }
    else if builtins.isPath configfile then
      null # build.nix reads a path itself
    else
      throw ''
        buildKernel: configfile is neither a buildKernelConfig result nor a path,
        so kdf cannot tell whether it has CONFIG_MODULES and CONFIG_RUST.
        Build it with buildKernelConfig, or pass a path (e.g. ./my.config).
      '';

  kernel = linuxManualConfig (
    {
      pname = "linux-kdf";
      inherit
        src
        version
        configfile
        kernelPatches
        extraMakeFlags
        ;
      modDirVersion = modDir;
    }
    // lib.optionalAttrs (config != null) { inherit config; }
  );

  kdir = "$dev/lib/modules/${modDir}/build";
in

assert lib.assertMsg (config == null || config.CONFIG_MODULES == "y") ''
  buildKernel: the configfile has CONFIG_MODULES off, so the kernel has no
  dev output to build modules against (buildCModule, buildRustModule) and no
  modules output. Add MODULES = lib.kernel.yes to structuredExtraConfig (or
  CONFIG_MODULES=y to a fragment).
'';

kernel.overrideAttrs (finalAttrs: old: {
  # With __structuredAttrs (build.nix) only `env` is exported, and the kernel's
  # make reads $(dontStrip) to decide INSTALL_MOD_STRIP: set it there so both
  # make and stdenv's strip hook see it.
  env = (old.env or { }) // {
    dontStrip = "1";
  };

  # build.nix runs `make oldconfig`, then this hook.
  postConfigure =
    (old.postConfigure or "")
    + "\n"
    + lib.optionalString (configfile ? requested) ''
      bash ${./lib/check-config.sh} ${configfile.requested} "$buildRoot/.config"
    '';

  # Appended after build.nix's postInstall, which ends in the pruned
  # $dev/lib/modules/<v>/source; $buildRoot/.. is the untouched source tree.
  postInstall =
    (old.postInstall or "")
    + "\n"
    + ''
      cp "${kdir}/scripts/gdb/vmlinux-gdb.py" "${kdir}/vmlinux-gdb.py"
      # A build dir has its vmlinux: kbuild reads it for modules' BTF, and
      # `kdf run --kernel <build dir>` boots it (PVH).
      ln -s "$dev/vmlinux" "${kdir}/vmlinux"
      # Generated in the build tree; older build.nix versions do not copy it.
      if [ ! -e "${kdir}/scripts/gdb/linux/constants.py" ]; then
        cp "$buildRoot/scripts/gdb/linux/constants.py" "${kdir}/scripts/gdb/linux/"
      fi
    ''
    + lib.optionalString keepSource ''
      # build.nix left scripts/ and the headers read-only.
      chmod -R u+w "$dev/lib/modules/${modDir}/source"
      rsync --archive --exclude=/build/ "$buildRoot/../" "$dev/lib/modules/${modDir}/source/"
      # Debug info names sources relative to the build dir ("../kernel/fork.c");
      # an empty build/ next to them lets gdb resolve those from source/build.
      mkdir -p "$dev/lib/modules/${modDir}/source/build"
    '';

  passthru = (old.passthru or { }) // {
    # The directory gdb searches for sources (see build/gdb-cmd.nix).
    sourceDir = "${finalAttrs.finalPackage.dev}/lib/modules/${modDir}/source";
    inherit keepSource;
  };
})
