# kdf's Nix builders, for a nixpkgs package set: `kdf.lib.builders { inherit pkgs; }`
# (a flake's lib has no system, so this is a function of pkgs).
#
# For another architecture's guests, pass its package set as targetPkgs:
# `kdf.lib.builders { inherit pkgs; targetPkgs = pkgs.pkgsCross.aarch64-multiplatform; }`
# cross-builds the kernel, its modules and kdf-init for arm64 (nixpkgs' kernel
# build takes ARCH and CROSS_COMPILE from that set's stdenv), while kdf, the
# VM and gdb commands and the initramfs step stay the host's (pkgs).
#
# One builder per file, each `{ dependencies }: { arguments }: derivation`;
# docs/builders.md lists every builder's arguments. callPackage fills in the
# dependencies from pkgs and from the builders themselves (buildRustModule
# uses buildCModule, buildInitramfs uses kdf and kdf-init).
{
  pkgs,
  # The package set of the guests' architecture (default: pkgs' own).
  targetPkgs ? pkgs,
}:

let
  # What runs on the host.
  callPackage = pkgs.lib.callPackageWith (pkgs // builders);
  # What runs in the guest, built for its architecture.
  callTarget = pkgs.lib.callPackageWith (targetPkgs // builders);

  builders = {
    buildKernelConfig = callTarget ./kernel-config.nix { };
    buildKernel = callTarget ./kernel.nix { };
    buildCModule = callTarget ./c-module.nix { };
    buildRustModule = callTarget ./rust-module.nix { };
    buildInitramfs = callPackage ./initramfs.nix { };
    buildQemuCmd = callPackage ./qemu-cmd.nix { };
    buildGdbCmd = callPackage ./gdb-cmd.nix { };

    kdf = callPackage ./kdf.nix { };
    kdf-init = callTarget ./kdf-init.nix { };
  };
in
builders
