//! Small pieces of guest state: kernel release, uptime, clock, hostname,
//! loopback. None of them is worth stopping the VM for.

use std::time::Duration;

use kdf_proto::Plan;
use nix::sys::time::TimeSpec;
use nix::time::{clock_gettime, clock_settime, ClockId};

use crate::log::say;

pub fn release() -> String {
    nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default()
}

/// Microseconds since the kernel started.
pub fn uptime_us() -> u64 {
    clock_gettime(ClockId::CLOCK_BOOTTIME).map(|t| Duration::from(t).as_micros() as u64).unwrap_or(0)
}

/// Host clock, hostname and loopback: failures are reported, never fatal.
pub fn configure(plan: &Plan) {
    let now = TimeSpec::from(Duration::from_nanos(plan.clock_ns));
    if let Err(e) = clock_settime(ClockId::CLOCK_REALTIME, now) {
        say(&format!("warning: cannot set the clock: {e}"));
    }
    if let Err(e) = nix::unistd::sethostname(&plan.hostname) {
        say(&format!("warning: cannot set the hostname: {e}"));
    }
    if let Err(e) = crate::net::loopback_up() {
        say(&format!("warning: cannot bring up lo: {e}"));
    }
}

/// The kernel's taint flags (`/proc/sys/kernel/tainted`), 0 if unreadable.
pub fn tainted() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/tainted").ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
}
