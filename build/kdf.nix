# kdf: the host CLI. kdf looks for kdf-init next to itself and in
# <prefix>/lib/kdf/ (kdf/src/initramfs/init_binary.rs), so the package links the
# static kdf-init there: a Nix user never passes --init. QEMU and virtiofsd
# come with it through KDF_QEMU/KDF_VIRTIOFSD defaults (set-default: a user's
# own values win); kdf passes only a fixed list of variables to the guest, so
# these stay on the host.
{
  lib,
  rustPlatform,
  makeWrapper,
  qemu_kvm,
  virtiofsd,
  kdf-init,
}:

rustPlatform.buildRustPackage {
  pname = "kdf";
  version = (lib.importTOML ../Cargo.toml).workspace.package.version;

  src = import ./lib/rust-source.nix { inherit lib; };
  cargoLock.lockFile = ../Cargo.lock;

  cargoBuildFlags = [
    "-p"
    "kdf"
  ];
  # Unit tests only: kdf/tests/*.rs boot VMs, which the build sandbox cannot.
  cargoTestFlags = [
    "-p"
    "kdf"
    "-p"
    "kdf-proto"
    "--bins"
    "--lib"
  ];

  nativeBuildInputs = [ makeWrapper ];

  postInstall = ''
    mkdir -p "$out/lib/kdf"
    ln -s ${lib.getExe kdf-init} "$out/lib/kdf/kdf-init"
    wrapProgram "$out/bin/kdf" \
      --set-default KDF_QEMU ${lib.getExe' qemu_kvm "qemu-system-x86_64"} \
      --set-default KDF_VIRTIOFSD ${lib.getExe virtiofsd}
  '';

  passthru = {
    inherit kdf-init;
  };

  meta = {
    description = "The Kernel Development Flake's CLI: boot kernels fast, with your files, and debug them";
    license = lib.licenses.mit;
    mainProgram = "kdf";
    platforms = [ "x86_64-linux" ];
  };
}
