//! The VM's processes as pure command lines: QEMU, virtiofsd, and the choice
//! of accelerator.

pub mod accel;
pub mod qemu;
pub mod virtiofsd;
