# buildRustModule: an out-of-tree kernel module written in Rust. Kbuild builds
# Rust modules the same way as C ones (against the rust/ metadata in the
# kernel's dev build dir, with the kernel's own rustc and bindgen from
# kernel.moduleBuildDependencies), so this is buildCModule plus the check that
# the kernel has Rust at all, which otherwise fails deep inside kbuild.
{
  lib,
  buildCModule,
}:

{
  # The kernel to build against: a buildKernel result with CONFIG_RUST=y.
  kernel,
}:

{
  # The derivation name, e.g. "rust-hello".
  name,
  # The module's source directory (with its Kbuild file and .rs files).
  src,
  # Any other buildCModule/mkDerivation attribute (makeFlags, patches, meta, ...).
  ...
}@args:

# withRust: build.nix passthru, true when the kernel's config has CONFIG_RUST=y.
assert lib.assertMsg (kernel.withRust or false) ''
  buildRustModule (${name}): the kernel ${kernel.version or ""} was built
  without Rust (CONFIG_RUST). Build its config with buildKernelConfig's
  enableRust = true (the default), or RUST = lib.kernel.yes.
'';

buildCModule { inherit kernel; } args
