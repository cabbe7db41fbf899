//! Kernel configuration as data, with no I/O and no dependencies in the
//! crate: Kconfig fragments ([`fragment`]) and a kernel's `.config` as kdf run
//! reads it ([`config`]). Kept apart from `kbuild/` (which builds kernels)
//! because `vm/`, `kernel/`, `kbuild/` and `cli/` all read config data, and
//! none of them may depend on another through it.

pub mod config;
pub mod fragment;
