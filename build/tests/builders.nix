# Evaluation tests for kdf's builders and the flake's packages (nothing is
# built). On kdf's CI, against the stand-in nixpkgs:
#
#   nix-instantiate --eval --strict -E "import ./build/tests/builders.nix { }"
#
# prints "ok: N tests", or fails naming each test with what it got and
# expected. The flake's checks.<system>.builders evaluates the same cases
# against real nixpkgs.
let
  mock = (import ./mock-nixpkgs/flake.nix).outputs { self = mock; };
  standIn = mock.legacyPackages.x86_64-linux;
  flake = (import ../../flake.nix).outputs {
    self = flake;
    nixpkgs = mock;
  };
in
{
  pkgs ? standIn,
  # The flake's packages for pkgs' system.
  packages ? flake.packages.x86_64-linux,
}:
let
  b = import ../. { inherit pkgs; };
  fill = import ../lib/template.nix;
  inherit (packages) kernel;
  inherit (pkgs.lib) escapeShellArg escapeShellArgs getExe;

  hasInfix = infix: s: builtins.replaceStrings [ infix ] [ "" ] s != s;
  throws = x: !(builtins.tryEval (builtins.deepSeq x x)).success;

  hello = b.buildCModule { inherit kernel; } {
    name = "helloworld";
    src = ../../modules/helloworld;
  };
  helloDebug = b.buildCModule { inherit kernel; } {
    name = "helloworld";
    src = ../../modules/helloworld;
    makeFlags = [ "CONFIG_HELLO_DEBUG=y" ];
  };
  custom = {
    name = "custom";
    src = ../../modules/helloworld;
    dontConfigure = false;
    preBuild = "echo pre";
    buildPhase = "my build";
    installPhase = "my install";
  };
  phases = m: [
    m.dontConfigure
    m.preBuild
    m.buildPhase
    m.installPhase
  ];
  runvmVars = {
    kdf = "k";
    kernel = "b";
    initramfs = "i";
    workdir = "w";
    preload = "false";
  };

  tests = {
    # Issue 11, 1: runvm loaded both example modules at boot, so the README's
    # `insmod modules/helloworld.ko` failed with "File exists".
    runQemuLoadsNoModuleAtBoot = {
      expr = {
        initramfs = packages.runQemu.passthru.initramfs.passthru.modules;
        flakeInitramfs = packages.initramfs.passthru.modules;
        inherit (packages.runQemu.passthru) preload;
        preloadOff = hasInfix "if false; then" packages.runQemu.text;
        inModules = map (e: e.name) packages.runQemu.passthru.workdir.passthru.entries;
      };
      expected = {
        initramfs = [ ];
        flakeInitramfs = [ ];
        preload = false;
        preloadOff = true;
        inModules = [
          "helloworld"
          "rust-hello"
        ];
      };
    };
    preloadLoadsThemBeforeTheCommand = {
      expr =
        hasInfix "if true; then" (
          b.buildQemuCmd {
            inherit kernel;
            modules = [ hello ];
            preload = true;
          }
        ).text;
      expected = true;
    };
    runvmWrapsKdfRun = {
      expr =
        let
          t = packages.runQemu.text;
        in
        map (s: hasInfix s t) [
          "exec ${escapeShellArg (getExe packages.kdf)} run"
          "--kernel ${escapeShellArg "${kernel}/bzImage"}"
          "--initramfs ${escapeShellArg "${packages.runQemu.passthru.initramfs}/initrd"}"
          "workdir=${escapeShellArg "${packages.runQemu.passthru.workdir}"}"
          "--cmdline nokaslr"
        ];
      expected = [
        true
        true
        true
        true
        true
      ];
    };

    # Issue 11, 5: buildCModule replaced a user's phases silently.
    cModuleKeepsTheUsersPhases = {
      expr = phases (b.buildCModule { inherit kernel; } custom);
      expected = phases custom;
    };
    rustModuleKeepsTheUsersPhases = {
      expr = phases (b.buildRustModule { inherit kernel; } custom);
      expected = phases custom;
    };
    cModuleDefaultsRunTheLibScripts = {
      expr = [
        hello.dontConfigure
        (hasInfix "module-build.sh" hello.buildPhase)
        (hasInfix "module-install.sh" hello.installPhase)
      ];
      expected = [
        true
        true
        true
      ];
    };

    # Issue 11, 6: two packages with a .ko of the same name broke the
    # modules/ symlink step; each gets its own directory name for them.
    sameNamedPackagesGetDistinctDirectories = {
      expr =
        map (e: e.name)
          (b.buildQemuCmd {
            inherit kernel;
            modules = [
              hello
              packages.rust
              helloDebug
            ];
          }).passthru.workdir.passthru.entries;
      expected = [
        "helloworld-1"
        "rust-hello"
        "helloworld-3"
      ];
    };
    workdirRunsTheLibScriptWithEachPackage = {
      expr =
        let
          cmd = packages.runQemu.passthru.workdir.buildCommand;
        in
        [
          (hasInfix "vm-workdir.sh" cmd)
          (hasInfix (escapeShellArgs [
            "rust-hello"
            packages.rust.debugModulesDir
          ]) cmd)
        ];
      expected = [
        true
        true
      ];
    };

    # Issue 11, 4: the config step runs build/lib/kernel-config.sh (no `src`
    # in make's environment).
    kernelConfigRunsTheLibScript = {
      expr = hasInfix "kernel-config.sh" packages.kernelConfig.buildPhase;
      expected = true;
    };
    initramfsRunsTheLibScript = {
      expr = hasInfix "initramfs.sh" packages.initramfs.buildCommand;
      expected = true;
    };

    rungdbWrapsKdfGdb = {
      expr =
        let
          t = packages.runGdb.text;
          gdb = packages.runGdb.passthru.gdbinit.text;
        in
        [
          (hasInfix "gdb --kernel ${escapeShellArg "${kernel.dev}/lib/modules/${kernel.modDirVersion}/build"}" t)
          (hasInfix (escapeShellArgs [
            "--module-dir"
            packages.helloworld.debugModulesDir
          ]) t)
          (hasInfix "-x ${escapeShellArg "${packages.runGdb.passthru.gdbinit}"}" t)
          (hasInfix "define lx-symbols-nix\n  lx-symbols-runtime\nend" gdb)
          (hasInfix "directory ${kernel.sourceDir}\n" gdb)
        ];
      expected = [
        true
        true
        true
        true
        true
      ];
    };

    # Issue 14, 6: the builders take the guests' package set; the arm64
    # kernel, its modules and kdf-init are cross-built, kdf stays the host's.
    arm64KernelIsCrossConfiguredWithTheArm64Fragment = {
      expr =
        let
          c = packages.kernelConfigArm64;
          names = map baseNameOf c.passthru.fragments;
        in
        {
          inherit names;
          x86 = map baseNameOf packages.kernelConfig.passthru.fragments;
          flags = builtins.filter (f: hasInfix "ARCH=" f || hasInfix "CROSS_COMPILE=" f) c.makeFlags;
          target = packages.kernelArm64.target;
          moduleFlags = builtins.elem "ARCH=arm64" packages.helloworldArm64.makeFlags;
        };
      expected = {
        names = [
          "vm.config"
          "arm64.config"
          "fast.config"
          "rust.config"
        ];
        x86 = [
          "vm.config"
          "x86_64.config"
          "fast.config"
          "rust.config"
        ];
        flags = [
          "ARCH=arm64"
          "CROSS_COMPILE=aarch64-unknown-linux-gnu-"
        ];
        target = "Image";
        moduleFlags = true;
      };
    };
    kdfInitIsStaticMuslForEachGuest = {
      expr = map (i: [
        i.static
        i.rustTarget
      ]) [ packages.kdf-init packages.kdf-init-aarch64 ];
      expected = [
        [
          true
          "x86_64-unknown-linux-musl"
        ]
        [
          true
          "aarch64-unknown-linux-musl"
        ]
      ];
    };
    # `nix flake show` lists the outputs without evaluating nixpkgs: no
    # attribute name may depend on a package set.
    outputNamesDoNotDependOnPkgs =
      let
        noPkgs = {
          inherit (mock) lib;
          legacyPackages.x86_64-linux = throw "a package set was evaluated";
        };
        f = (import ../../flake.nix).outputs {
          self = f;
          nixpkgs = noPkgs;
        };
        noSet = throw "a package set was evaluated";
      in
      {
        expr = map (x: builtins.tryEval (builtins.length (builtins.attrNames x))) [
          f.packages.x86_64-linux
          f.apps.x86_64-linux
          f.checks.x86_64-linux
          (f.lib.builders {
            pkgs = noSet;
            targetPkgs = noSet;
          })
        ];
        expected = map (n: {
          success = true;
          value = n;
        }) [ 14 3 6 9 ];
      };

    templatesRefuseMissingAndUnknownPlaceholders = {
      expr = [
        (throws (fill ../templates/runvm.sh (removeAttrs runvmVars [ "workdir" ])))
        (throws (fill ../templates/runvm.sh (runvmVars // { extra = "x"; })))
        (hasInfix "exec k run" (fill ../templates/runvm.sh runvmVars))
      ];
      expected = [
        true
        true
        true
      ];
    };
  };

  failures = builtins.filter (name: tests.${name}.expr != tests.${name}.expected) (
    builtins.attrNames tests
  );
  describe =
    name:
    "${name}: got ${builtins.toJSON tests.${name}.expr}, expected ${builtins.toJSON tests.${name}.expected}";
in
if failures == [ ] then
  "ok: ${toString (builtins.length (builtins.attrNames tests))} tests"
else
  throw "build/tests/builders.nix: ${toString (builtins.length failures)} test(s) failed:\n${builtins.concatStringsSep "\n" (map describe failures)}"
