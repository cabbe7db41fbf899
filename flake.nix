{
  description = "kdf, the Kernel Development Flake: minimal debug kernels, C and Rust module builders, VMs that boot in seconds with your files, and GDB wired up";

  inputs.nixpkgs.url = "github:nixos/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" ];

      # nixpkgs.lib.genAttrs, spelled out: no framework needed.
      genAttrs =
        names: f:
        builtins.listToAttrs (
          map (name: {
            inherit name;
            value = f name;
          }) names
        );

      # Everything the flake ships, for one package set: kdf's minimal debug
      # kernel (fast profile, Rust on) from nixpkgs' newest kernel source, the
      # two example modules, kdf's initramfs, and the VM and gdb commands.
      kdfFor =
        pkgs:
        let
          builders = self.lib.builders { inherit pkgs; };
          inherit (builders)
            buildKernelConfig
            buildKernel
            buildCModule
            buildRustModule
            buildInitramfs
            buildQemuCmd
            buildGdbCmd
            ;
          # Version and source from nixpkgs, never hard-coded.
          inherit (pkgs.linux_latest) src version modDirVersion;

          kernelConfig = buildKernelConfig { inherit src version; };
          kernel = buildKernel {
            inherit src version modDirVersion;
            configfile = kernelConfig;
          };

          helloworld = buildCModule { inherit kernel; } {
            name = "helloworld";
            src = ./modules/helloworld;
          };
          rust = buildRustModule { inherit kernel; } {
            name = "rust-hello";
            src = ./modules/rust;
          };
          modules = [
            helloworld
            rust
          ];

          # Without the modules: runvm leaves them in its modules/ directory
          # for insmod and rmmod (loaded at boot, insmod would say "File exists").
          initramfs = buildInitramfs { inherit kernel; };
        in
        {
          inherit (builders) kdf kdf-init;
          inherit
            kernelConfig
            kernel
            helloworld
            rust
            initramfs
            ;
          runQemu = buildQemuCmd { inherit kernel initramfs modules; };
          runGdb = buildGdbCmd { inherit kernel modules; };
        };

      # The same kernel and module cross-built for arm64 guests, and kdf-init
      # for them: the builders with the target's package set. (Fixed names:
      # the outputs' attribute names never depend on pkgs.)
      arm64For =
        pkgs:
        let
          builders = self.lib.builders {
            inherit pkgs;
            targetPkgs = pkgs.pkgsCross.aarch64-multiplatform;
          };
          inherit (pkgs.linux_latest) src version modDirVersion;
          kernelConfigArm64 = builders.buildKernelConfig { inherit src version; };
          kernelArm64 = builders.buildKernel {
            inherit src version modDirVersion;
            configfile = kernelConfigArm64;
          };
        in
        {
          inherit kernelConfigArm64 kernelArm64;
          helloworldArm64 = builders.buildCModule { kernel = kernelArm64; } {
            name = "helloworld";
            src = ./modules/helloworld;
          };
          kdf-init-aarch64 = builders.kdf-init;
        };

      perSystem = genAttrs systems (
        system: kdfFor nixpkgs.legacyPackages.${system} // arm64For nixpkgs.legacyPackages.${system}
      );
      forAllSystems = f: genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
    in
    {
      # kdf's builders for your own kernel, modules and VM:
      #   kdfLib = kdf.lib.builders { inherit pkgs; };
      # (a flake's lib has no system, so this takes the package set), and for
      # arm64 guests, cross-built (kernel, modules, kdf-init):
      #   kdfLib = kdf.lib.builders { inherit pkgs; targetPkgs = pkgs.pkgsCross.aarch64-multiplatform; };
      lib.builders =
        {
          pkgs,
          targetPkgs ? pkgs,
        }:
        import ./build { inherit pkgs targetPkgs; };

      # kdf, kdf-init, and `linuxDev`: nixpkgs' module package set
      # (linuxPackagesFor) for kdf's kernel.
      overlays.default =
        final: _prev:
        let
          k = kdfFor final;
        in
        {
          inherit (k) kdf kdf-init;
          linuxDev = final.linuxPackagesFor k.kernel;
        };

      packages = forAllSystems (
        system: _pkgs:
        let
          k = perSystem.${system};
        in
        {
          inherit (k)
            kdf
            kdf-init
            kernel
            kernelConfig
            helloworld
            rust
            initramfs
            runQemu
            runGdb
            kernelConfigArm64
            kernelArm64
            helloworldArm64
            kdf-init-aarch64
            ;
          default = k.kdf;
        }
      );

      legacyPackages = forAllSystems (
        system: pkgs: {
          linuxDev = pkgs.linuxPackagesFor perSystem.${system}.kernel;
        }
      );

      apps = forAllSystems (
        system: _pkgs:
        let
          p = self.packages.${system};
        in
        {
          runQemu = {
            type = "app";
            program = "${p.runQemu}/bin/runvm";
            meta.description = "Boot kdf's kernel with the example modules in modules/ (runvm)";
          };
          runGdb = {
            type = "app";
            program = "${p.runGdb}/bin/rungdb";
            meta.description = "Attach gdb to a `runvm -d` VM, sources and scripts loaded (rungdb)";
          };
          default = {
            type = "app";
            program = "${p.kdf}/bin/kdf";
            meta.description = "The kdf CLI";
          };
        }
      );

      devShells = forAllSystems (
        system: pkgs:
        let
          k = perSystem.${system};
          tools = [
            k.kdf
            pkgs.qemu_kvm
            pkgs.virtiofsd
            pkgs.gdb
            pkgs.just
            pkgs.bear
            pkgs.cargo
            pkgs.clippy
            pkgs.rustfmt
            pkgs.rust-analyzer
          ];
        in
        {
          # Kernel and module development against kdf's kernel: the kernel's
          # own build inputs (compiler tools, pahole, the kernel's rustc and
          # bindgen), KDIR for the modules' Makefiles. Entering it builds the
          # kernel the first time.
          default = pkgs.mkShell {
            inputsFrom = [ k.kernel ];
            packages = tools;
            env = {
              KDIR = "${k.kernel.dev}/lib/modules/${k.kernel.modDirVersion}/build";
              RUST_LIB_SRC = pkgs.rustPlatform.rustLibSrc;
            };
            # The kernel is built with the unwrapped compiler; `make` in a
            # module directory uses the wrapped one, so keep it from adding
            # hardening flags the kernel was not built with.
            hardeningDisable = [ "all" ];
          };

          # The tools only, no kernel build (kdf with --release, CLI work).
          tools = pkgs.mkShell { packages = tools; };
        }
      );

      checks = forAllSystems (
        system: pkgs:
        let
          p = self.packages.${system};
        in
        {
          # build/lib/config.nix, evaluated: a failing test fails evaluation.
          config-lib = pkgs.runCommand "kdf-config-lib-tests" { } ''
            echo ${pkgs.lib.escapeShellArg (import ./build/tests/config.nix)} > "$out"
          '';
          # build/tests/builders.nix against this nixpkgs: the builders'
          # attributes and the generated scripts, evaluated.
          builders = pkgs.runCommand "kdf-builders-tests" { } ''
            echo ${
              pkgs.lib.escapeShellArg (
                import ./build/tests/builders.nix {
                  inherit pkgs;
                  packages = p;
                }
              )
            } > "$out"
          '';
          # The fragments in configs/ land in a real .config (minutes, no kernel
          # build), for x86_64 and cross-configured for arm64.
          inherit (p) kernelConfig kernelConfigArm64 kdf kdf-init;
        }
      );

      formatter = forAllSystems (_system: pkgs: pkgs.nixfmt);
    };
}
