# buildCModule: an out-of-tree kernel module, built with kbuild against a
# kernel's dev output (`make -C <build dir> M=<source>`), the way nixpkgs'
# module packages are (kernel.moduleBuildDependencies, kernel.commonMakeFlags:
# the same unwrapped compiler as the kernel).
#
# Outputs: $out/lib/modules/<v>/extra/*.ko (stripped by the fixup, for the
# initramfs) and $out/share/kdf/modules/*.ko (unstripped, for gdb's
# lx-symbols; stdenv strips only lib/, bin/ and friends).
#
# Any module with a Kbuild (or a Makefile that sets obj-m) builds: kbuild is
# called directly, the module's own Makefile is only for humans.
{
  lib,
  stdenv,
}:

{
  # The kernel to build against: a buildKernel result (any kernel with a dev output).
  kernel,
}:

{
  # The derivation name, e.g. "helloworld".
  name,
  # The module's source directory (with its Kbuild file).
  src,
  # Extra kbuild make flags, e.g. [ "CONFIG_HELLO_DEBUG=y" ].
  makeFlags ? [ ],
  # Any other mkDerivation attribute (nativeBuildInputs, patches, meta, ...).
  ...
}@args:

assert lib.assertMsg (kernel ? dev && kernel ? modDirVersion) ''
  buildCModule (${name}): `kernel` has no dev output to build against.
  Pass a buildKernel result whose config has CONFIG_MODULES=y
  (kdf's profiles do).
'';

let
  kdir = "${kernel.dev}/lib/modules/${kernel.modDirVersion}/build";
  # The compiler the kernel was built with (build.nix passthru, when present).
  kernelStdenv = kernel.stdenv or stdenv;
in
kernelStdenv.mkDerivation (
  finalAttrs:
  removeAttrs args [ "makeFlags" ]
  // {
    inherit name src;

    nativeBuildInputs = kernel.moduleBuildDependencies ++ args.nativeBuildInputs or [ ];
    hardeningDisable = [ "pic" ] ++ args.hardeningDisable or [ ];

    # Verified against nixpkgs' out-of-tree modules (e.g. mba6x_bl, ena):
    # kernel.commonMakeFlags + the dev build dir.
    makeFlags = kernel.commonMakeFlags ++ makeFlags;

    dontConfigure = true;

    buildPhase = ''
      runHook preBuild
      make -j"$NIX_BUILD_CORES" -C ${kdir} M="$PWD" $makeFlags modules
      runHook postBuild
    '';

    # modules_install skips depmod here (the dev build dir has no System.map):
    # kdf writes the initramfs' modules.dep itself.
    installPhase = ''
      runHook preInstall
      make -C ${kdir} M="$PWD" $makeFlags \
        INSTALL_MOD_PATH="$out" INSTALL_MOD_DIR=extra modules_install
      mkdir -p "$out/share/kdf/modules"
      find . -name '*.ko' -exec cp -t "$out/share/kdf/modules" {} +
      if [ -z "$(ls "$out/share/kdf/modules")" ]; then
        echo "buildCModule (${name}): kbuild built no .ko; does the Kbuild file set obj-m?" >&2
        exit 1
      fi
      runHook postInstall
    '';

    passthru = {
      inherit kernel;
      # Where gdb's lx-symbols finds this module's unstripped .ko files.
      debugModulesDir = "${finalAttrs.finalPackage}/share/kdf/modules";
    }
    // args.passthru or { };

    meta = {
      platforms = lib.platforms.linux;
    }
    // args.meta or { };
  }
)
