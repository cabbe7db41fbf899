# The Cargo workspace's sources, and nothing else: editing docs or Nix files
# does not rebuild kdf or kdf-init. configs/ is in: kdf compiles the config
# fragments in (include_str! in kdf/src/kconfig/profile.rs).
{ lib }:

lib.fileset.toSource {
  root = ../..;
  fileset = lib.fileset.unions [
    ../../Cargo.toml
    ../../Cargo.lock
    ../../configs
    ../../kdf
    ../../kdf-init
    ../../kdf-proto
  ];
}
