//! The host's TSC frequency, for TCG guests. Under TCG a guest's `rdtsc`
//! reads the host's TSC, so the guest's TSC runs at the host's rate; told that
//! rate (`tsc_early_khz=`), the kernel skips calibrating the TSC against the
//! PIT, which fails when a loaded host starves the vCPU ("tsc: Unable to
//! calibrate against PIT", then a guest without a usable clock).
//!
//! Measured once per host boot (20 ms) and cached; only on hosts whose TSC
//! runs at a constant rate through sleep states (`constant_tsc`,
//! `nonstop_tsc`), where the guest may also trust it (`tsc=reliable`).

use std::time::Duration;

use crate::cache;

/// How long the TSC is counted against the host's raw monotonic clock.
const SPAN: Duration = Duration::from_millis(20);

/// The host TSC's frequency in kHz, or None where it cannot be trusted.
pub fn host_khz() -> Option<u32> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    if !invariant(&cpuinfo) {
        return None;
    }
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let path = cache::subdir("tsc").ok()?.join(cache::digest([boot_id.trim()]));
    if let Some(khz) = std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse().ok()) {
        return Some(khz);
    }
    let khz = measure()?;
    let _ = cache::write_atomic(&path, khz.to_string().as_bytes());
    Some(khz)
}

/// Whether the first CPU's flags promise a constant, always-running TSC.
fn invariant(cpuinfo: &str) -> bool {
    let flags = cpuinfo.lines().find(|l| l.starts_with("flags")).unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    has("constant_tsc") && has("nonstop_tsc")
}

#[cfg(target_arch = "x86_64")]
fn measure() -> Option<u32> {
    let (t0, n0) = sample()?;
    std::thread::sleep(SPAN);
    let (t1, n1) = sample()?;
    khz(t1.checked_sub(t0)?, n1.checked_sub(n0)?)
}

#[cfg(not(target_arch = "x86_64"))]
fn measure() -> Option<u32> {
    None
}

/// A (TSC, nanoseconds) pair read as close together as the best of a few
/// tries allows (a preempted read is discarded).
#[cfg(target_arch = "x86_64")]
fn sample() -> Option<(u64, u64)> {
    let now = || {
        let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `t` is a valid, writable timespec for the call's duration.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_RAW, &mut t) };
        (rc == 0).then(|| t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
    };
    let mut best: Option<(u64, u64, u64)> = None;
    for _ in 0..8 {
        let before = now()?;
        // SAFETY: rdtsc has no preconditions on x86_64 and touches no memory.
        let tsc = unsafe { core::arch::x86_64::_rdtsc() };
        let after = now()?;
        let width = after - before;
        if best.is_none_or(|(_, _, w)| width < w) {
            best = Some((tsc, before + width / 2, width));
        }
    }
    best.map(|(tsc, ns, _)| (tsc, ns))
}

/// kHz from a TSC delta over a nanosecond delta; None for nonsense.
fn khz(ticks: u64, nanos: u64) -> Option<u32> {
    if nanos == 0 {
        return None;
    }
    let khz = (ticks as u128 * 1_000_000 / nanos as u128) as u64;
    // Between 100 MHz and 20 GHz, or something went wrong.
    (100_000..20_000_000).contains(&khz).then_some(khz as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_constant_nonstop_tsc_counts() {
        assert!(invariant("processor\t: 0\nflags\t\t: fpu tsc constant_tsc nonstop_tsc rdtscp\n"));
        assert!(!invariant("flags\t\t: fpu tsc constant_tsc\n"));
        assert!(!invariant("flags\t\t: fpu tsc nonstop_tsc_s constant_tsc\n"));
        assert!(!invariant("no flags here"));
    }

    #[test]
    fn khz_is_ticks_per_millisecond_within_reason() {
        assert_eq!(khz(52_000_000, 20_000_000), Some(2_600_000));
        assert_eq!(khz(1, 0), None);
        assert_eq!(khz(10, 20_000_000), None);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_measured_rate_is_stable() {
        if !invariant(&std::fs::read_to_string("/proc/cpuinfo").unwrap()) {
            return;
        }
        let (a, b) = (measure().unwrap() as f64, measure().unwrap() as f64);
        // A preempted sleep only lengthens both deltas alike.
        assert!((a - b).abs() / a < 0.01, "{a} vs {b}");
    }
}
