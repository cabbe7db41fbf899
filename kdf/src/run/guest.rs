//! The guest's architecture and what follows from it before anything else:
//! `--arch` checked against the kernel, the machine (`--machine` on x86_64,
//! `virt` on arm64) and the accelerator (KVM only for the host's own).

use anyhow::Result;

use super::machine;
use crate::accel::{self, Decision};
use crate::arch::Arch;
use crate::cli::MachineArg;
use crate::errors::{hinted, usage_hinted};
use crate::kconfig::config::KernelConfig;
use crate::kernel::Kernel;
use crate::vm::qemu::{Accel, Machine};

/// The guest's architecture: the kernel's, which `--arch` must name if given.
pub fn arch(given: Option<Arch>, kernel: &Kernel) -> Result<Arch> {
    match given {
        Some(arch) if arch != kernel.arch => Err(hinted(
            format!("the kernel {} is an {} kernel, not an {arch} one", kernel.image.display(), kernel.arch),
            kernel_hint(arch),
        )),
        _ => Ok(kernel.arch),
    }
}

fn kernel_hint(arch: Arch) -> String {
    match arch {
        Arch::Arm64 => {
            "pass --kernel with an arm64 Image, Image.gz or Debian's vmlinuz (its package unpacked: \
             scripts/fetch-kernel-package.sh --arch arm64 DIR), or build one: kdf kernel build --arch arm64"
                .into()
        }
        Arch::X86_64 => "pass --kernel with an x86_64 bzImage or vmlinux, or drop --arch".into(),
    }
}

/// The QEMU machine: x86_64's choice ([`machine::choose`]); on arm64 always
/// `virt`, its virtio devices on MMIO unless the kernel has only PCI.
pub fn machine(
    arch: Arch,
    given: MachineArg,
    config: Option<&KernelConfig>,
    qemu_args: bool,
) -> Result<Machine> {
    match arch {
        Arch::X86_64 => Ok(machine::choose(given, config, qemu_args)),
        Arch::Arm64 if given != MachineArg::Auto => Err(usage_hinted(
            format!("--machine {given:?} is an x86_64 machine; arm64 guests run on QEMU's virt")
                .to_lowercase(),
            "drop --machine",
        )),
        Arch::Arm64 => Ok(Machine::Virt { pci: virt_pci(config) }),
    }
}

/// virtio-mmio needs no bus to enumerate (a little less boot); a kernel
/// without CONFIG_VIRTIO_MMIO but with CONFIG_VIRTIO_PCI gets PCIe. A config
/// kdf cannot read gets MMIO, and the requirement check has nothing to say.
fn virt_pci(config: Option<&KernelConfig>) -> bool {
    config.is_some_and(|c| !c.enabled("CONFIG_VIRTIO_MMIO") && c.enabled("CONFIG_VIRTIO_PCI"))
}

/// KVM or TCG: the usual decision ([`accel::decide`]) for the host's own
/// architecture; always TCG, with no notice, for another's.
pub fn accel(foreign: bool, forced: Option<Accel>) -> Result<Decision> {
    if !foreign {
        return accel::decide(forced);
    }
    if forced == Some(Accel::Kvm) {
        return Err(usage_hinted(
            "--accel kvm: KVM runs only guests of the host's architecture",
            "drop --accel kvm (another architecture runs under TCG)",
        ));
    }
    Ok(Decision { accel: Accel::Tcg, tentative: false, fallback: false, notice: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(arch: Arch) -> Kernel {
        Kernel {
            image: "/k/Image".into(),
            boot: "/k/Image".into(),
            release: None,
            arch,
            modules_dir: None,
            guest_modules: None,
            config: None,
        }
    }

    fn config(lines: &str) -> KernelConfig {
        KernelConfig::parse(lines, "test").unwrap()
    }

    #[test]
    fn the_arch_is_the_kernels_and_a_mismatch_is_named() {
        assert_eq!(arch(None, &kernel(Arch::Arm64)).unwrap(), Arch::Arm64);
        assert_eq!(arch(Some(Arch::Arm64), &kernel(Arch::Arm64)).unwrap(), Arch::Arm64);
        let err = arch(Some(Arch::Arm64), &kernel(Arch::X86_64)).unwrap_err();
        assert_eq!(format!("{err:#}"), "the kernel /k/Image is an x86_64 kernel, not an arm64 one");
    }

    #[test]
    fn arm64_runs_on_virt_with_mmio_unless_the_kernel_has_only_pci() {
        let both = config("CONFIG_VIRTIO_MMIO=m\nCONFIG_VIRTIO_PCI=m\n");
        let pci = config("CONFIG_VIRTIO_PCI=y\n");
        let m = |c| machine(Arch::Arm64, MachineArg::Auto, c, false).unwrap();
        assert_eq!(m(Some(&both)), Machine::Virt { pci: false });
        assert_eq!(m(Some(&pci)), Machine::Virt { pci: true });
        assert_eq!(m(None), Machine::Virt { pci: false });
        assert!(machine(Arch::Arm64, MachineArg::Q35, None, false).is_err());
        assert_eq!(machine(Arch::X86_64, MachineArg::Q35, None, false).unwrap(), Machine::Q35);
    }

    #[test]
    fn another_architecture_runs_under_tcg_without_a_notice() {
        let d = accel(true, None).unwrap();
        assert_eq!((d.accel, d.tentative, d.notice), (Accel::Tcg, false, None));
        assert!(accel(true, Some(Accel::Kvm)).is_err());
    }
}
