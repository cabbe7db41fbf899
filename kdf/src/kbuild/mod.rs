//! Kernel builds: `kdf kernel config` and `kdf kernel build` make debug
//! kernels from a source tree, configured from a base (allnoconfig by
//! default, or a distro, defconfig or CI config) with `configs/` and the
//! user's fragments on top, and built out of tree (`make O=`), ready for
//! `kdf run --kernel BUILD_DIR`. Configuration as data, with no I/O:
//! fragments ([`fragment`]), kdf's profiles from `configs/` ([`profile`]),
//! the layers of a request and how strictly each is checked ([`layers`]),
//! what the Kconfig tree says an option depends on ([`kconfig_deps`]),
//! checking a resulting `.config` ([`verify`], [`misses`]), make variables
//! ([`makevars`]), the architecture and cross toolchain ([`arch`]).

pub mod arch;
pub mod base;
pub mod build;
pub mod ccache;
pub mod configure;
// Config data lives in `crate::kconfig`; the name stays for the config code here.
pub use crate::kconfig::fragment;
pub mod inputs;
pub mod kconfig_deps;
pub mod layers;
pub mod make;
pub mod makevars;
pub mod misses;
pub mod profile;
pub mod toolchain;
pub mod tree;
pub mod tree_build;
pub mod verify;
