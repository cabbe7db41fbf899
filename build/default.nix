# kdf's Nix builders, for a nixpkgs package set: `kdf.lib.builders { inherit pkgs; }`
# (a flake's lib has no system, so this is a function of pkgs).
#
# One builder per file, each `{ dependencies }: { arguments }: derivation`;
# docs/builders.md lists every builder's arguments. callPackage fills in the
# dependencies from pkgs and from the builders themselves (buildRustModule
# uses buildCModule, buildInitramfs uses kdf and kdf-init).
{ pkgs }:

let
  callPackage = pkgs.lib.callPackageWith (pkgs // builders);

  builders = {
    buildKernelConfig = callPackage ./kernel-config.nix { };
    buildKernel = callPackage ./kernel.nix { };
    buildCModule = callPackage ./c-module.nix { };
    buildRustModule = callPackage ./rust-module.nix { };
    buildInitramfs = callPackage ./initramfs.nix { };
    buildQemuCmd = callPackage ./qemu-cmd.nix { };
    buildGdbCmd = callPackage ./gdb-cmd.nix { };

    kdf = callPackage ./kdf.nix { };
    kdf-init = callPackage ./kdf-init.nix { };
  };
in
builders
