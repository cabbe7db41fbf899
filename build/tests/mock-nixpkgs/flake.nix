# A stand-in for nixpkgs, for machines that cannot fetch it: just enough of
# lib and pkgs (same argument names, fake store paths) to evaluate kdf's
# flake and builders offline. build/tests/eval-flake.sh uses it to catch
# plumbing mistakes (a wrong argument, a missing attribute, a broken script
# text) with Nix alone; it proves nothing about building. linuxManualConfig
# takes exactly build.nix's arguments (no `...`), as nixpkgs' does, with
# build.nix's default `target` and common-flags.nix's ARCH/CROSS_COMPILE for
# the package set's platform. pkgsCross.aarch64-multiplatform is the same set
# for aarch64-unknown-linux-gnu (lib/systems/examples.nix).
{
  outputs = { self }: let
    system = "x86_64-linux";
    inherit (builtins) isFunction attrNames filter functionArgs intersectAttrs concatStringsSep map elem;
    lib = rec {
      optional = c: x: if c then [ x ] else [ ];
      optionals = c: xs: if c then xs else [ ];
      optionalString = c: s: if c then s else "";
      optionalAttrs = c: a: if c then a else { };
      # lib/kernel.nix
      kernel = {
        yes = { tristate = "y"; optional = false; };
        no = { tristate = "n"; optional = false; };
        module = { tristate = "m"; optional = false; };
        unset = { tristate = null; optional = false; };
        freeform = freeform: { inherit freeform; optional = false; };
        option = x: x // { optional = true; };
      };
      assertMsg = pred: msg: pred || builtins.throw msg;
      filter = builtins.filter;
      concatMapStrings = f: l: concatStringsSep "" (map f l);
      concatStringsSep = builtins.concatStringsSep;
      escapeShellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString s) + "'";
      escapeShellArgs = l: concatStringsSep " " (map escapeShellArg l);
      getExe = d: "${d}/bin/${d.meta.mainProgram or (builtins.throw "getExe: ${d.name} has no meta.mainProgram")}";
      getExe' = d: n: "${d}/bin/${n}";
      importTOML = p: builtins.fromTOML (builtins.readFile p);
      versions.pad = n: v: let parts = builtins.filter builtins.isString (builtins.split "\\." v); in concatStringsSep "." (parts ++ builtins.genList (_: "0") (n - builtins.length parts));
      licenses = { gpl2Only = "gpl2Only"; mit = "mit"; };
      platforms.linux = [ "x86_64-linux" ];
      fileset = {
        unions = l: map (p: assert builtins.pathExists p; p) l;
        toSource = { root, fileset }: assert builtins.pathExists root; "${root}";
      };
      callPackageWith = autoArgs: fn: args:
        let
          f = if isFunction fn then fn else import fn;
          fargs = functionArgs f;
          missing = filter (n: !fargs.${n} && !(autoArgs ? ${n}) && !(args ? ${n})) (attrNames fargs);
        in
        if missing != [ ] then builtins.throw "callPackage: missing ${toString missing}"
        else f (intersectAttrs fargs autoArgs // args);
    };

    mkDerivation = fnOrAttrs:
      let
        toAttrs = final: if isFunction fnOrAttrs then fnOrAttrs final else fnOrAttrs;
        attrs = toAttrs final;
        final = attrs // { finalPackage = drv; };
        name = attrs.name or "${attrs.pname}-${attrs.version}";
        out = "/nix/store/fake-${name}";
        drv = attrs // (attrs.passthru or { }) // {
          inherit name;
          type = "derivation";
          outPath = out;
          dev = { outPath = "${out}-dev"; };
          modules = { outPath = "${out}-modules"; };
          meta = attrs.meta or { };
          overrideAttrs = f: mkDerivation (fin: let prev = toAttrs fin; ext = f prev; in prev // (if isFunction ext then f fin prev else ext));
        };
      in
      drv;

    fake = name: mkDerivation { inherit name; meta.mainProgram = name; };

    # stdenv.hostPlatform, as far as kdf reads it (lib/systems/default.nix).
    x86_64 = { system = "x86_64-linux"; config = "x86_64-unknown-linux-gnu"; linuxArch = "x86_64"; isx86_64 = true; isAarch64 = false; };
    aarch64 = { system = "aarch64-linux"; config = "aarch64-unknown-linux-gnu"; linuxArch = "arm64"; isx86_64 = false; isAarch64 = true; };

    # A package set for `platform`, built on x86_64-linux (cross where they differ).
    mkPkgs = platform: let
    prefix = if platform == x86_64 then "" else "${platform.config}-";
    linuxManualConfig = {
      version, pname ? "linux", pos ? null, extraMakeFlags ? [ ], modDirVersion ? null, src,
      kernelPatches ? [ ], configfile, target ? (if platform.isAarch64 then "Image" else "bzImage"),
      buildDTBs ? platform.isAarch64,
      config ? { }, randstructSeed ? "", extraMeta ? { }, isZen ? false,
      allowImportFromDerivation ? false, features ? { }, lib ? null, stdenv ? null,
    }:
      let
        modDir = if modDirVersion == null then pkgs.lib.versions.pad 3 version else modDirVersion;
        commonMakeFlags = [ "CC=/nix/store/fake-gcc/bin/${prefix}gcc" "ARCH=${platform.linuxArch}" "CROSS_COMPILE=${prefix}" ] ++ extraMakeFlags;
        withRust = (config.CONFIG_RUST or "n") == "y";
      in
      mkDerivation {
        inherit pname version src;
        __structuredAttrs = true;
        env = { RUST_LIB_SRC = ""; };
        postInstall = "echo nixpkgs-postInstall";
        passthru = {
          inherit version config configfile commonMakeFlags withRust target kernelPatches;
          modDirVersion = modDir;
          moduleBuildDependencies = [ (fake "pahole") ] ++ (if withRust then [ (fake "rustc-unwrapped") ] else [ ]);
          stdenv = pkgs.stdenv;
          kernelOlder = v: false;
          kernelAtLeast = v: true;
        };
      };

    pkgs = {
      inherit lib linuxManualConfig;
      stdenv = { inherit mkDerivation; hostPlatform = platform; cc = (fake "gcc") // { isClang = false; cc = { pname = "gcc"; }; }; };
      buildPackages.stdenv.cc = fake "gcc";
      emptyFile = fake "empty-file";
      writeText = name: text: (fake name) // { inherit text; };
      runCommand = name: env: buildCommand: mkDerivation (env // { inherit name buildCommand; });
      writeShellApplication = { name, text, runtimeInputs ? [ ], runtimeEnv ? null, meta ? { }, passthru ? { }, checkPhase ? null, excludeShellChecks ? [ ], extraShellCheckFlags ? [ ], bashOptions ? [ ], inheritPath ? true, derivationArgs ? { } }:
        mkDerivation { inherit name text runtimeInputs passthru; meta = meta // { mainProgram = name; }; };
      mkShell = attrs: mkDerivation ({ name = "nix-shell"; } // attrs);
      rustPlatform = {
        rustLibSrc = fake "rust-lib-src";
        buildRustPackage = attrs: assert attrs ? cargoLock || attrs ? cargoHash; assert !(attrs ? cargoSha256); mkDerivation attrs;
      };
      # pkgsStatic of this set: musl, static, for its platform.
      pkgsStatic.rustPlatform.buildRustPackage = attrs: mkDerivation (attrs // {
        static = true;
        rustTarget = builtins.replaceStrings [ "-gnu" ] [ "-musl" ] platform.config;
      });
      pkgsCross.aarch64-multiplatform = mkPkgs aarch64;
      linuxPackagesFor = kernel: { inherit kernel; callPackage = lib.callPackageWith (pkgs // { inherit kernel; }); };
      linux_latest = { version = "7.1.3"; modDirVersion = "7.1.3"; src = fake "linux-7.1.3.tar.xz"; };
    } // builtins.listToAttrs (map (n: { name = n; value = fake n; }) [
      "bc" "bison" "flex" "perl" "openssl" "elfutils" "zlib" "pahole" "python3Minimal" "rustc-unwrapped"
      "rust-bindgen-unwrapped" "gdb" "makeWrapper" "qemu_kvm" "virtiofsd" "cargo" "clippy" "rustfmt"
      "rust-analyzer" "just" "bear" "nixfmt"
    ]);
    in pkgs;
    pkgs = mkPkgs x86_64;
  in {
    inherit lib;
    legacyPackages.${system} = pkgs;
  };
}
