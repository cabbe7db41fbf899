# kdf-init: the guest's PID 1. It runs from the initramfs, which has no dynamic
# loader, so it is a static musl binary: pkgsStatic's rustPlatform builds for
# the package set's architecture with musl and +crt-static
# (x86_64-unknown-linux-musl; aarch64-unknown-linux-musl from
# pkgsCross.aarch64-multiplatform, which lib.builders' targetPkgs passes here).
# pkgsCross.musl64 would link it dynamically. kdf refuses a kdf-init that is
# not static.
{
  lib,
  pkgsStatic,
}:

pkgsStatic.rustPlatform.buildRustPackage {
  pname = "kdf-init";
  version = (lib.importTOML ../Cargo.toml).workspace.package.version;

  src = import ./lib/rust-source.nix { inherit lib; };
  cargoLock.lockFile = ../Cargo.lock;

  cargoBuildFlags = [
    "-p"
    "kdf-init"
  ];
  cargoTestFlags = [
    "-p"
    "kdf-init"
    "-p"
    "kdf-proto"
  ];

  meta = {
    description = "The guest's PID 1 for kdf VMs: mounts, modules, the host's files, one command";
    license = lib.licenses.mit;
    mainProgram = "kdf-init";
    platforms = lib.platforms.linux;
  };
}
