//! Which QEMU machine a run uses (`--machine`).

use crate::cli::MachineArg;
use crate::kconfig::config::KernelConfig;
use crate::vm::qemu::Machine;

/// The machine: `--machine auto` picks microvm (no PCI, no firmware: the
/// fastest boot) when the kernel can find virtio-mmio devices there -- through
/// ACPI, or through the `virtio_mmio.device=` arguments QEMU adds
/// (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES) -- and q35 for other kernels, a kernel
/// whose config kdf cannot read, and runs with `--qemu-arg` (whose devices
/// usually expect a PCI bus). microvm's TCG boots once hung when the TSC
/// calibration failed on a loaded host; kdf now gives TCG guests the host's
/// TSC rate (see `vm::qemu::clock_args` and docs/decisions.md).
pub fn choose(choice: MachineArg, config: Option<&KernelConfig>, qemu_args: bool) -> Machine {
    let acpi = config.is_some_and(|c| c.builtin("CONFIG_ACPI"));
    let mmio = config.is_some_and(|c| {
        c.enabled("CONFIG_VIRTIO_MMIO") && (acpi || c.builtin("CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES"))
    });
    match choice {
        MachineArg::Q35 => Machine::Q35,
        MachineArg::Microvm => Machine::Microvm { acpi },
        MachineArg::Auto if mmio && !qemu_args => Machine::Microvm { acpi },
        MachineArg::Auto => Machine::Q35,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(lines: &str) -> KernelConfig {
        KernelConfig::parse(lines, "test").unwrap()
    }

    #[test]
    fn auto_is_microvm_where_the_kernel_finds_mmio_devices() {
        let acpi = config("CONFIG_ACPI=y\nCONFIG_VIRTIO_MMIO=m\n");
        let cmdline = config("CONFIG_VIRTIO_MMIO=y\nCONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y\n");
        assert_eq!(choose(MachineArg::Auto, Some(&acpi), false), Machine::Microvm { acpi: true });
        assert_eq!(choose(MachineArg::Auto, Some(&cmdline), false), Machine::Microvm { acpi: false });
    }

    #[test]
    fn auto_is_q35_otherwise() {
        let no_discovery = config("CONFIG_VIRTIO_MMIO=y\n");
        let no_mmio = config("CONFIG_ACPI=y\nCONFIG_VIRTIO_PCI=y\n");
        let acpi = config("CONFIG_ACPI=y\nCONFIG_VIRTIO_MMIO=y\n");
        assert_eq!(choose(MachineArg::Auto, Some(&no_discovery), false), Machine::Q35);
        assert_eq!(choose(MachineArg::Auto, Some(&no_mmio), false), Machine::Q35);
        assert_eq!(choose(MachineArg::Auto, None, false), Machine::Q35, "an unknown config");
        assert_eq!(choose(MachineArg::Auto, Some(&acpi), true), Machine::Q35, "--qemu-arg devices want PCI");
    }

    #[test]
    fn an_explicit_choice_is_kept() {
        assert_eq!(
            choose(MachineArg::Q35, Some(&config("CONFIG_ACPI=y\nCONFIG_VIRTIO_MMIO=y\n")), false),
            Machine::Q35
        );
        assert_eq!(choose(MachineArg::Microvm, None, true), Machine::Microvm { acpi: false });
    }
}
