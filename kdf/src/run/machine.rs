//! Which QEMU machine a run uses (`--machine`).

use crate::cli::MachineArg;
use crate::kconfig::config::KernelConfig;
use crate::vm::qemu::Machine;

/// The machine: `--machine auto` picks microvm (no PCI, no firmware: the
/// fastest boot) for kernels that find virtio-mmio devices on the command line
/// (`CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES`), booted without ACPI tables, where
/// the PIT drives the clock until the local APIC timer is calibrated; and q35
/// for other kernels, a kernel whose config kdf cannot read, and runs with
/// `--qemu-arg` (whose devices usually expect a PCI bus). A kernel that can
/// find microvm's devices only through ACPI (Debian's) has no routed PIT
/// there: a local APIC timer calibration spoilt by a starved vCPU leaves it
/// without a clock event (4 hung boots in 216 on a loaded host; see
/// docs/decisions.md), so it gets microvm only when asked for.
pub fn choose(choice: MachineArg, config: Option<&KernelConfig>, qemu_args: bool) -> Machine {
    let acpi = config.is_some_and(|c| c.builtin("CONFIG_ACPI"));
    let cmdline_devices = config
        .is_some_and(|c| c.enabled("CONFIG_VIRTIO_MMIO") && c.builtin("CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES"));
    match choice {
        MachineArg::Q35 => Machine::Q35,
        MachineArg::Microvm if cmdline_devices => Machine::Microvm { acpi: false },
        MachineArg::Microvm => Machine::Microvm { acpi },
        MachineArg::Auto if cmdline_devices && !qemu_args => Machine::Microvm { acpi: false },
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
    fn auto_is_microvm_without_acpi_where_the_kernel_takes_devices_on_its_cmdline() {
        let cmdline = config("CONFIG_VIRTIO_MMIO=y\nCONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y\n");
        let both = config("CONFIG_ACPI=y\nCONFIG_VIRTIO_MMIO=m\nCONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y\n");
        assert_eq!(choose(MachineArg::Auto, Some(&cmdline), false), Machine::Microvm { acpi: false });
        assert_eq!(choose(MachineArg::Auto, Some(&both), false), Machine::Microvm { acpi: false });
    }

    #[test]
    fn auto_is_q35_otherwise() {
        let acpi_only = config("CONFIG_ACPI=y\nCONFIG_VIRTIO_MMIO=m\n");
        let no_mmio = config("CONFIG_ACPI=y\nCONFIG_VIRTIO_PCI=y\nCONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y\n");
        let cmdline = config("CONFIG_VIRTIO_MMIO=y\nCONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y\n");
        assert_eq!(choose(MachineArg::Auto, Some(&acpi_only), false), Machine::Q35, "Debian's kernel");
        assert_eq!(choose(MachineArg::Auto, Some(&no_mmio), false), Machine::Q35);
        assert_eq!(choose(MachineArg::Auto, None, false), Machine::Q35, "an unknown config");
        assert_eq!(
            choose(MachineArg::Auto, Some(&cmdline), true),
            Machine::Q35,
            "--qemu-arg devices want PCI"
        );
    }

    #[test]
    fn an_explicit_choice_is_kept() {
        let acpi_only = config("CONFIG_ACPI=y\nCONFIG_VIRTIO_MMIO=y\n");
        assert_eq!(choose(MachineArg::Q35, Some(&acpi_only), false), Machine::Q35);
        assert_eq!(choose(MachineArg::Microvm, Some(&acpi_only), false), Machine::Microvm { acpi: true });
        assert_eq!(choose(MachineArg::Microvm, None, true), Machine::Microvm { acpi: false });
    }
}
