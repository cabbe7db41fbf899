# buildKernelConfig: a kernel .config from kdf's fragments (configs/*.config,
# the one source of truth shared with `kdf kernel config`) plus nixpkgs-style
# structuredExtraConfig, starting from allnoconfig: no distribution defaults,
# only what a kdf VM and a debugging session need.
#
# Every requested option is verified to have landed (build/lib/check-config.sh),
# the guarantee nixpkgs' generate-config.pl gives: Kconfig silently drops a
# value whose dependencies are off, and a debug kernel without, say, its GDB
# scripts is a silent waste of a build.
{
  lib,
  stdenv,
  buildPackages,
  writeText,
  emptyFile,
  linuxManualConfig,
  bc,
  bison,
  flex,
  perl,
  openssl,
  elfutils,
  zlib,
  pahole,
  python3Minimal,
  rustc-unwrapped,
  rust-bindgen-unwrapped,
  rustPlatform,
}:

let
  configLib = import ./lib/config.nix;

  # The architecture's own fragment (configs/x86_64.config, configs/arm64.config),
  # by the kernel's name for it (ARCH=, as build.nix's commonMakeFlags pass it).
  linuxArch = stdenv.hostPlatform.linuxArch;
  archFragment =
    let
      file = ../configs + "/${linuxArch}.config";
    in
    if builtins.pathExists file then
      file
    else
      throw ''
        buildKernelConfig: kdf has no fragment for ARCH=${linuxArch}
        (${stdenv.hostPlatform.system}): it builds x86_64 and arm64 kernels.
        Use pkgs or pkgs.pkgsCross.aarch64-multiplatform as the target package
        set, or pass your own `fragments`.
      '';

  profiles = {
    fast = [
      ../configs/vm.config
      archFragment
      ../configs/fast.config
    ];
    debug = [
      ../configs/vm.config
      archFragment
      ../configs/debug.config
    ];
  };

  profileFragments =
    {
      profile,
      enableRust,
      enableBPF,
    }:
    (
      profiles.${profile} or (throw ''
        buildKernelConfig: profile = "${profile}" is not a kdf profile.
        Use "fast" (configs/vm.config + the architecture's + configs/fast.config)
        or "debug" (the same with configs/debug.config), or pass your own `fragments`.
      '')
    )
    ++ lib.optional enableRust ../configs/rust.config
    ++ lib.optional enableBPF ../configs/bpf.config;
in

{
  # The kernel source: a tarball or a directory (e.g. pkgs.linux_latest.src).
  src,
  # The kernel version, e.g. pkgs.linux_latest.version.
  version,
  # "fast" (boots fastest, DWARF5, GDB scripts) or "debug" (the full debug set).
  profile ? "fast",
  # Rust support (configs/rust.config); buildRustModule needs it. On, except
  # for the debug profile with GCC: its KASAN needs clang for Rust.
  enableRust ? !(profile == "debug" && !stdenv.cc.isClang),
  # eBPF support (configs/bpf.config): a larger kernel that builds longer.
  enableBPF ? false,
  # The fragment files, merged in order (a later value wins); default: the profile's.
  fragments ? profileFragments { inherit profile enableRust enableBPF; },
  # More fragment files, merged after `fragments`.
  extraFragments ? [ ],
  # nixpkgs-style options merged last, e.g. { KASAN = lib.kernel.yes; }.
  structuredExtraConfig ? { },
  # Patches applied before configuring ([ { name; patch; } ]); pass the same to buildKernel.
  kernelPatches ? [ ],
  # Extra make flags (e.g. [ "LLVM=1" ]); pass the same to buildKernel.
  extraMakeFlags ? [ ],
}:

assert lib.assertMsg (builtins.isList fragments && builtins.isList extraFragments) ''
  buildKernelConfig: `fragments` and `extraFragments` must be lists of files,
  e.g. extraFragments = [ ./my.config ];
'';

let
  settings = configLib.merge (
    map (f: configLib.parseFragment (builtins.readFile f)) (fragments ++ extraFragments)
    ++ [ (configLib.fromStructuredConfig structuredExtraConfig) ]
  );

  # What allnoconfig starts from (KCONFIG_ALLCONFIG), and what must land.
  allconfig = writeText "kdf-kernel-${version}-allconfig" (configLib.toText settings);
  requested = writeText "kdf-kernel-${version}-requested" (
    configLib.toText (configLib.required settings)
  );

  isYes = name: (settings.${name}.value or "n") == "y";
  withRust = isYes "RUST";

  # The make flags the kernel build itself uses (build.nix's commonMakeFlags:
  # the unwrapped compiler, ARCH, CROSS_COMPILE), read from the passthru of a
  # kernel derivation that is never built. Kconfig probes the compiler, so the
  # .config must come from the same one, or the kernel's `oldconfig` changes it.
  # (Verified: pkgs/os-specific/linux/kernel/build.nix passthru.commonMakeFlags.)
  commonMakeFlags =
    (linuxManualConfig {
      inherit src version;
      configfile = emptyFile;
      config = { };
    }).commonMakeFlags;
in

# init/Kconfig: RUST "depends on !KASAN || CC_IS_CLANG". Kconfig would drop
# RUST silently and the check below would name it; say why up front.
assert lib.assertMsg (!(withRust && isYes "KASAN" && !stdenv.cc.isClang)) ''
  buildKernelConfig: Rust and KASAN together need a clang-built kernel
  (RUST depends on !KASAN || CC_IS_CLANG), and this stdenv's compiler is
  ${stdenv.cc.cc.pname or "gcc"}. Pass enableRust = false, or drop KASAN
  (structuredExtraConfig = { KASAN = lib.kernel.no; }), or build with clang.
'';

stdenv.mkDerivation {
  pname = "kdf-kernel-config";
  inherit version src;

  patches = lib.filter (p: p != null) (map (p: p.patch or null) kernelPatches);

  # The same tools build.nix puts on PATH: Kconfig's probes (pahole for BTF,
  # rustc and bindgen for RUST_IS_AVAILABLE) must see what the build will see.
  depsBuildBuild = [ buildPackages.stdenv.cc ];
  nativeBuildInputs = [
    bc
    bison
    flex
    perl
    openssl
    elfutils
    zlib
    pahole
    python3Minimal
  ]
  ++ lib.optionals withRust [
    rustc-unwrapped
    rust-bindgen-unwrapped
  ];

  env.RUST_LIB_SRC = lib.optionalString withRust rustPlatform.rustLibSrc;

  makeFlags = commonMakeFlags ++ extraMakeFlags;

  postPatch = ''
    patchShebangs scripts
  '';

  dontConfigure = true;

  # build/lib/kernel-config.sh: allnoconfig with KCONFIG_ALLCONFIG (every
  # option no, except the ones the fragments set), without the derivation's
  # `src` in make's environment; then every requested option is checked.
  buildPhase = ''
    runHook preBuild
    local flagsArray=()
    concatTo flagsArray makeFlags makeFlagsArray
    bash ${./lib/kernel-config.sh} . ${allconfig} build "''${flagsArray[@]}"
    bash ${./lib/check-config.sh} ${requested} build/.config
    runHook postBuild
  '';

  installPhase = ''
    runHook preInstall
    cp build/.config $out
    runHook postInstall
  '';

  passthru = {
    # The merged settings ({ RUST = { value = "y"; optional = false; }; ... }):
    # buildKernel reads MODULES and RUST from them without import-from-derivation.
    inherit
      settings
      requested
      allconfig
      profile
      withRust
      ;
    fragments = fragments ++ extraFragments;
    inherit linuxArch;
  };

  meta = {
    description = "Kernel .config for kdf (${profile} profile, ${linuxArch}) from its config fragments";
    license = lib.licenses.gpl2Only;
    platforms = lib.platforms.linux;
  };
}
