//! How one attempt to boot and run ends, and how long a boot may take.

use std::time::Duration;

use crate::vm::qemu::Accel;

/// How an attempt to boot ended.
pub enum Attempt {
    Finished(i32),
    /// KVM could not run the guest (tentative KVM only): retry under TCG.
    KvmFailed(String),
}

pub fn default_boot_timeout(accel: Accel) -> Duration {
    match accel {
        Accel::Kvm => Duration::from_secs(20),
        Accel::Tcg => Duration::from_secs(60),
    }
}
