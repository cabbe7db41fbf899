//! Ending the VM: sync, then reset. kdf boots with `reboot=t` (triple fault) and
//! QEMU's `-no-reboot`, so a reset ends QEMU on every machine type, with or
//! without ACPI (`-M microvm` ignores a plain reboot; ACPI-less kernels cannot
//! power off).

use nix::sys::reboot::{reboot, RebootMode};

use crate::log::say;

pub fn off() -> ! {
    nix::unistd::sync();
    let err = reboot(RebootMode::RB_AUTOBOOT).unwrap_err();
    say(&format!("error: cannot reboot: {err}"));
    // PID 1 exiting panics the kernel; kdf boots with `panic=-1`, so that resets
    // the VM too.
    std::process::exit(1)
}

/// A panic in PID 1 is reported and ends the VM instead of hanging it.
pub fn die_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        say(&format!("error: internal error: {info}"));
        off();
    }));
}
