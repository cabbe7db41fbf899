//! Kernel configuration as data, with no I/O: fragments ([`fragment`]), the
//! profiles built from `configs/` ([`profile`]), what the Kconfig tree says an
//! option depends on ([`kconfig_deps`]), and checking a resulting `.config`
//! against the request ([`verify`]).

pub mod fragment;
pub mod kconfig_deps;
pub mod profile;
pub mod verify;
