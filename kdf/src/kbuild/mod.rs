//! Kernel builds: `kdf kernel config` and `kdf kernel build` make minimal
//! debug kernels from a source tree, configured from `configs/` and built out
//! of tree (`make O=`), ready for `kdf run --kernel BUILD_DIR`. Configuration
//! as data, with no I/O: fragments ([`fragment`]), the profiles built from
//! `configs/` ([`profile`]), what the Kconfig tree says an option depends on
//! ([`kconfig_deps`]), and checking a resulting `.config` ([`verify`]).

pub mod build;
pub mod configure;
pub mod fragment;
pub mod kconfig_deps;
pub mod make;
pub mod profile;
pub mod toolchain;
pub mod tree;
pub mod tree_build;
pub mod verify;

use anyhow::Result;

use crate::cli::KernelCommand;

pub fn run(cmd: &KernelCommand) -> Result<i32> {
    match cmd {
        KernelCommand::Config(args) => configure::run(args),
        KernelCommand::Build(args) => build::run(args),
    }
}
