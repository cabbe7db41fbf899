//! The VM's processes as pure command lines (QEMU, virtiofsd), its user-mode
//! network, and the one table of what a kdf VM needs from its kernel.

pub mod cmdline;
pub mod disk;
pub mod network;
pub mod numa;
pub mod option;
pub mod qemu;
pub mod requirements;
pub mod virtiofsd;

/// How shares reach the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Virtiofs,
    NineP,
}
