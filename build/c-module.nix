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
  # Any other mkDerivation attribute (nativeBuildInputs, patches, meta,
  # preBuild, and buildPhase/installPhase/dontConfigure to replace kdf's).
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

  # The phases kdf provides; a user's own dontConfigure, buildPhase or
  # installPhase replaces them, as with any mkDerivation (preBuild,
  # postInstall and the other hooks run either way).
  defaults = {
    dontConfigure = true;

    # build/lib/module-build.sh: make -C <kdir> M=$PWD modules, with
    # kernel.commonMakeFlags and the user's makeFlags (concatTo: plain or
    # structured attributes alike).
    buildPhase = ''
      runHook preBuild
      local flagsArray=()
      concatTo flagsArray makeFlags makeFlagsArray
      bash ${./lib/module-build.sh} ${kdir} -j"$NIX_BUILD_CORES" "''${flagsArray[@]}"
      runHook postBuild
    '';

    # build/lib/module-install.sh: lib/modules/<v>/extra/*.ko and
    # share/kdf/modules/*.ko.
    installPhase = ''
      runHook preInstall
      local flagsArray=()
      concatTo flagsArray makeFlags makeFlagsArray
      bash ${./lib/module-install.sh} ${lib.escapeShellArg name} ${kdir} "$out" "''${flagsArray[@]}"
      runHook postInstall
    '';
  };
in
kernelStdenv.mkDerivation (
  finalAttrs:
  defaults
  // removeAttrs args [ "makeFlags" ]
  // {
    inherit name src;

    nativeBuildInputs = kernel.moduleBuildDependencies ++ args.nativeBuildInputs or [ ];
    hardeningDisable = [ "pic" ] ++ args.hardeningDisable or [ ];

    # Verified against nixpkgs' out-of-tree modules (e.g. mba6x_bl, ena):
    # kernel.commonMakeFlags + the dev build dir.
    makeFlags = kernel.commonMakeFlags ++ makeFlags;

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
