//! How one attempt to boot and run ends, and how long a boot may take.

use std::time::Duration;

use super::prepare::BootTimeout;
use crate::status;
use crate::vm::qemu::Accel;

/// How an attempt to boot ended.
pub enum Attempt {
    Finished(i32),
    /// KVM could not run the guest (tentative KVM only): retry under TCG.
    KvmFailed(String),
}

/// Why a run is ending early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    TimedOut,
    Signalled(i32),
}

impl Ending {
    /// The run's status, and kdf's line saying why.
    pub fn report(self, timeout: Option<Duration>) -> (i32, String) {
        match self {
            Ending::TimedOut => {
                let secs = timeout.map(|t| t.as_secs_f64()).unwrap_or_default();
                (status::TIMEOUT, format!("the command timed out after {secs}s"))
            }
            Ending::Signalled(sig) => {
                let name = nix::sys::signal::Signal::try_from(sig).map(|s| s.as_str()).unwrap_or("signal");
                (128 + sig, format!("stopped the VM after {name}"))
            }
        }
    }
}

pub fn default_boot_timeout(accel: Accel) -> Duration {
    match accel {
        Accel::Kvm => Duration::from_secs(20),
        Accel::Tcg => Duration::from_secs(60),
    }
}

/// How long the guest may take to boot under `accel`; `None`: no limit.
pub fn boot_limit(timeout: BootTimeout, accel: Accel) -> Option<Duration> {
    match timeout {
        BootTimeout::Default => Some(default_boot_timeout(accel)),
        BootTimeout::Given(t) => Some(t),
        BootTimeout::Off => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings_name_their_status_and_reason() {
        let t = Some(Duration::from_millis(1500));
        assert_eq!(Ending::TimedOut.report(t), (124, "the command timed out after 1.5s".into()));
        assert_eq!(Ending::Signalled(15).report(None), (143, "stopped the VM after SIGTERM".into()));
    }

    #[test]
    fn a_debugged_run_has_no_boot_timeout_unless_one_is_given() {
        let two = Duration::from_secs(2);
        assert_eq!(boot_limit(BootTimeout::of(None, false), Accel::Tcg), Some(Duration::from_secs(60)));
        assert_eq!(boot_limit(BootTimeout::of(None, true), Accel::Tcg), None);
        assert_eq!(boot_limit(BootTimeout::of(Some(two), true), Accel::Kvm), Some(two));
        assert_eq!(boot_limit(BootTimeout::of(Some(two), false), Accel::Tcg), Some(two));
    }
}
