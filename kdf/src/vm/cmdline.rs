//! The kernel command line kdf boots with, a pure function of the machine,
//! the accelerator and the run's options.

use super::qemu::{Accel, Machine};
use crate::kconfig::config::KernelConfig;

/// The kernel's detectors that a vCPU starved under TCG trips without a bug,
/// as far as its config tells. kdf relaxes only those the kernel has: it
/// hands an argument nobody takes to init (logging "Unknown kernel command
/// line parameters") and logs an unknown sysctl as an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watchdogs {
    /// `CONFIG_LOCKUP_DETECTOR`: `watchdog_thresh=`.
    pub lockup: bool,
    /// `CONFIG_DETECT_HUNG_TASK`: the `kernel.hung_task_timeout_secs` sysctl.
    pub hung_task: bool,
}

impl Watchdogs {
    /// The kernel's detectors; both when kdf cannot read its config.
    pub fn of(config: Option<&KernelConfig>) -> Watchdogs {
        let has = |option| config.is_none_or(|c| c.builtin(option));
        Watchdogs { lockup: has("CONFIG_LOCKUP_DETECTOR"), hung_task: has("CONFIG_DETECT_HUNG_TASK") }
    }
}

/// The kernel command line: kdf's essentials, quiet unless `verbose`, the
/// modules kdf-init loads before it reaches the host (`preload`), then the
/// user's `--cmdline` (later arguments win in the kernel's parser).
pub fn cmdline(
    machine: Machine,
    verbose: bool,
    debug: bool,
    accel: Accel,
    watchdogs: Watchdogs,
    preload: &[String],
    extra: &[String],
) -> String {
    let preload = format!("{}={}", kdf_proto::CMDLINE_PRELOAD, preload.join(","));
    let mut args = match machine {
        Machine::Q35 | Machine::Microvm { .. } => vec![
            "console=ttyS0",
            // With -no-reboot, a triple-fault reset ends QEMU on any machine.
            "reboot=t",
            // A panic resets at once (so QEMU exits) instead of hanging the VM.
            "panic=-1",
            "rdinit=/init",
            // The boot checks that the PIT's interrupt reaches the IO-APIC within
            // a few ticks; a vCPU starved by a loaded host misses it and the
            // kernel panics ("IO-APIC + timer doesn't work!", seen with eight TCG
            // guests on two cores). QEMU's timer wiring is known to be right.
            "no_timer_check",
        ],
        // virt's first UART is a PL011; a reset (PSCI SYSTEM_RESET) ends QEMU
        // under -no-reboot without any `reboot=` method, and the x86 timer
        // check does not exist there.
        Machine::Virt { .. } => vec!["console=ttyAMA0", "panic=-1", "rdinit=/init"],
    };
    if !verbose {
        args.extend(["quiet", "loglevel=4"]);
    }
    if debug {
        // GDB's symbols match only an unrandomised kernel (a bzImage boot
        // would otherwise apply KASLR; a PVH boot never does).
        args.push("nokaslr");
    }
    if accel == Accel::Tcg {
        // A guest starved of CPU (TCG on a loaded host) reports RCU stalls,
        // soft lockups and hung tasks that are not bugs, and kdf fails a run
        // on those: give it the most slack the kernel allows.
        args.push("rcupdate.rcu_cpu_stall_timeout=300");
        if watchdogs.lockup {
            args.push("watchdog_thresh=60");
        }
        if watchdogs.hung_task {
            args.push("sysctl.kernel.hung_task_timeout_secs=600");
        }
    }
    let mut line = args.join(" ");
    line.push(' ');
    line.push_str(&preload);
    for e in extra {
        line.push(' ');
        line.push_str(e);
    }
    line
}

/// The kernel's clocks under TCG (none of this applies under KVM, where
/// kvmclock gives the guest its frequencies): the host's TSC rate when known
/// (`tsc_khz`), so the kernel neither calibrates the TSC against the PIT nor
/// later distrusts it; on q35, no local APIC timer.
pub fn clock_args(accel: Accel, machine: Machine, tsc_khz: Option<u32>) -> Vec<String> {
    let mut args = Vec::new();
    // arm64's generic timer has a fixed frequency QEMU announces: nothing to
    // calibrate.
    if accel != Accel::Tcg || matches!(machine, Machine::Virt { .. }) {
        return args;
    }
    if let Some(khz) = tsc_khz {
        // A starved vCPU fails the PIT calibration ("tsc: Unable to calibrate
        // against PIT"); the TSC is then unusable and, on microvm, the
        // kernel is left without a working clock. The guest reads the host's
        // TSC, which the caller checked runs at a constant rate.
        args.push(format!("tsc_early_khz={khz}"));
        args.push("tsc=reliable".to_string());
    }
    // Calibrating the local APIC timer against the PIT takes ~0.2 s of a TCG
    // boot (Debian 6.1, kdf's 7.3 fast kernel); without it another clock
    // event device drives the timers: q35's HPET, or on microvm without ACPI
    // the PIT (routed through the MP table). microvm with ACPI has neither a
    // HPET nor a routed PIT: there the local APIC timer is the only clock
    // event, and `noapictimer` stalls the first sleep.
    if matches!(machine, Machine::Q35 | Machine::Microvm { acpi: false }) {
        args.push("noapictimer".to_string());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preload(transport: &str) -> Vec<String> {
        vec![transport.into(), "virtio_console".into()]
    }

    /// The q35 line for a kernel whose config kdf cannot read.
    fn q35(accel: Accel, verbose: bool, debug: bool, extra: &[String]) -> String {
        cmdline(Machine::Q35, verbose, debug, accel, Watchdogs::of(None), &preload("virtio_pci"), extra)
    }

    #[test]
    fn the_vm_always_exits_instead_of_rebooting() {
        let c = q35(Accel::Tcg, false, false, &[]);
        assert!(q35(Accel::Kvm, false, true, &[]).contains("nokaslr"));

        assert!(c.contains("reboot=t") && c.contains("panic=-1") && c.contains("console=ttyS0"));
        assert!(c.contains("no_timer_check"), "a starved vCPU must not fail the IO-APIC timer check");
    }

    #[test]
    fn tcg_clocks_use_the_hosts_tsc_rate_and_skip_the_apic_timer_where_another_clock_drives() {
        let microvm = Machine::Microvm { acpi: true };
        let mptable = Machine::Microvm { acpi: false };
        assert_eq!(clock_args(Accel::Tcg, mptable, None), ["noapictimer"], "the PIT drives the clock");
        assert_eq!(
            clock_args(Accel::Tcg, Machine::Q35, Some(2_596_136)),
            ["tsc_early_khz=2596136", "tsc=reliable", "noapictimer"]
        );
        assert_eq!(clock_args(Accel::Tcg, Machine::Q35, None), ["noapictimer"]);
        assert_eq!(
            clock_args(Accel::Tcg, microvm, Some(1_000_000)),
            ["tsc_early_khz=1000000", "tsc=reliable"]
        );
        assert!(clock_args(Accel::Tcg, microvm, None).is_empty(), "microvm keeps its only clock event");
        assert!(clock_args(Accel::Kvm, Machine::Q35, Some(1)).is_empty(), "kvmclock under KVM");
    }

    #[test]
    fn cmdline_is_quiet_unless_verbose_and_user_args_come_last() {
        assert!(q35(Accel::Tcg, false, false, &[]).contains("quiet"));
        assert!(!q35(Accel::Tcg, true, false, &[]).contains("quiet"));
        assert!(q35(Accel::Tcg, false, false, &["loglevel=7".into()]).ends_with(" loglevel=7"));
    }

    #[test]
    fn tcg_relaxes_only_the_watchdogs_the_kernel_has() {
        let config = |text: &str| KernelConfig::parse(text, "test").unwrap();
        let none = config("# CONFIG_LOCKUP_DETECTOR is not set\n");
        let both = config("CONFIG_LOCKUP_DETECTOR=y\nCONFIG_DETECT_HUNG_TASK=y\n");
        assert_eq!(Watchdogs::of(Some(&none)), Watchdogs { lockup: false, hung_task: false });
        assert_eq!(Watchdogs::of(Some(&both)), Watchdogs { lockup: true, hung_task: true });
        assert_eq!(Watchdogs::of(None), Watchdogs { lockup: true, hung_task: true }, "an unknown config");

        let line = |w| cmdline(Machine::Q35, false, false, Accel::Tcg, w, &preload("virtio_pci"), &[]);
        let bare = line(Watchdogs::of(Some(&none)));
        assert!(!bare.contains("watchdog_thresh") && !bare.contains("hung_task"), "{bare}");
        assert!(bare.contains("rcu_cpu_stall_timeout"), "RCU is always there: {bare}");
        let full = line(Watchdogs::of(Some(&both)));
        assert!(full.contains("watchdog_thresh=60") && full.contains("hung_task_timeout_secs=600"), "{full}");
        let kvm = q35(Accel::Kvm, false, false, &[]);
        assert!(!kvm.contains("watchdog_thresh"), "no slack needed under KVM: {kvm}");
    }

    #[test]
    fn arm64_uses_the_pl011_console_and_no_x86_arguments() {
        let virt = Machine::Virt { pci: false };
        let c = cmdline(virt, false, true, Accel::Tcg, Watchdogs::of(None), &preload("virtio_mmio"), &[]);
        assert!(c.starts_with("console=ttyAMA0 panic=-1 rdinit=/init quiet"), "{c}");
        assert!(!c.contains("reboot=t") && !c.contains("no_timer_check") && !c.contains("ttyS0"), "{c}");
        assert!(c.contains("nokaslr") && c.contains("rcu_cpu_stall_timeout"), "{c}");
        assert!(c.contains("kdf.preload=virtio_mmio,virtio_console"), "{c}");
        assert!(clock_args(Accel::Tcg, virt, Some(2_000_000)).is_empty(), "no TSC, no PIT");
    }
}
