//! What a kdf VM needs from its kernel, in one table: each kernel option, the
//! module that provides it where it is `=m`, why kdf needs it and when. The
//! pre-boot kernel check, the modules a run's plan loads, the modules kdf-init
//! loads before it can reach the host (`kdf.preload`) and the initramfs's
//! module set are all derived from [`TABLE`]; `configs/vm.config` sets every
//! strict option in it, and it or kdf's fast profile the others (unit tests
//! keep them in step).

use crate::kconfig::config::KernelConfig;
use crate::vm::qemu::Machine;
use crate::vm::Transport;

/// When a requirement applies to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    /// With virtio over PCI (q35, arm64's virt with PCI).
    Pci,
    /// With virtio over MMIO (microvm, arm64's virt without PCI).
    Mmio,
    /// On an x86 machine (q35, microvm).
    X86,
    /// On arm64's virt machine.
    Virt,
    /// When shares travel this way.
    Shares(Transport),
    /// When a share is an overlay (`--virtiofs ...,overlay`, an overlaid `--root`).
    Overlay,
    /// With `--disk`.
    Disks,
    /// With `--numa`.
    Numa,
    /// With `--network user`.
    Network,
}

/// When kdf-init loads the module, if the kernel has it as `=m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Built in or nothing: there is no module to load.
    Never,
    /// Before the channel exists: named in `kdf.preload` on the command line.
    Boot,
    /// After `Hello`, from the run's plan.
    Plan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    pub option: &'static str,
    /// The module providing it when the option is `=m`.
    pub module: Option<&'static str>,
    /// What breaks without it (completes "the kernel lacks OPTION (...)").
    pub why: &'static str,
    pub when: When,
    pub load: Load,
    /// Every kdf VM needs it: `kdf kernel config` makes sure it lands, and a
    /// run is refused before boot without it.
    pub strict: bool,
    /// A run that asked for it (`--disk`, `--numa`) is refused before boot
    /// without it, though not every kdf kernel has it. A row neither strict
    /// nor refusing is used where present.
    pub refuses: bool,
}

const fn req(option: &'static str, why: &'static str) -> Requirement {
    Requirement {
        option,
        module: None,
        why,
        when: When::Always,
        load: Load::Never,
        strict: true,
        refuses: true,
    }
}

/// A row for something a run asks for (`--disk`, ...): not in every kdf kernel.
const fn asked(
    option: &'static str,
    module: Option<&'static str>,
    why: &'static str,
    when: When,
    load: Load,
    refuses: bool,
) -> Requirement {
    Requirement { option, module, why, when, load, strict: false, refuses }
}

const fn module(
    option: &'static str,
    module: &'static str,
    why: &'static str,
    when: When,
    load: Load,
) -> Requirement {
    Requirement { option, module: Some(module), why, when, load, strict: true, refuses: true }
}

/// Every requirement, in load order (dependencies first).
pub const TABLE: &[Requirement] = &[
    req("CONFIG_BLK_DEV_INITRD", "the kernel cannot load kdf's initramfs"),
    req("CONFIG_DEVTMPFS", "kdf-init cannot create device nodes"),
    req("CONFIG_TMPFS", "the guest gets no /tmp"),
    Requirement {
        when: When::X86,
        ..req("CONFIG_SERIAL_8250_CONSOLE", "there is no kernel console to diagnose failures")
    },
    // Not strict: `kdf kernel config` adds it from the arm64 fragment, not
    // from every kdf kernel's.
    asked(
        "CONFIG_SERIAL_AMBA_PL011_CONSOLE",
        None,
        "there is no kernel console on arm64's virt machine to diagnose failures",
        When::Virt,
        Load::Never,
        true,
    ),
    module("CONFIG_VIRTIO_PCI", "virtio_pci", "no virtio devices over PCI", When::Pci, Load::Boot),
    module("CONFIG_VIRTIO_MMIO", "virtio_mmio", "no virtio devices over MMIO", When::Mmio, Load::Boot),
    module(
        "CONFIG_VIRTIO_CONSOLE",
        "virtio_console",
        "kdf cannot talk to kdf-init",
        When::Always,
        Load::Boot,
    ),
    module(
        "CONFIG_VIRTIO_FS",
        "virtiofs",
        "it cannot mount the host's files; nor has it CONFIG_9P_FS for the 9p fallback",
        When::Shares(Transport::Virtiofs),
        Load::Plan,
    ),
    module(
        "CONFIG_NET_9P_VIRTIO",
        "9pnet_virtio",
        "no 9p transport over virtio",
        When::Shares(Transport::NineP),
        Load::Plan,
    ),
    module("CONFIG_9P_FS", "9p", "no 9p filesystem", When::Shares(Transport::NineP), Load::Plan),
    module("CONFIG_OVERLAY_FS", "overlay", "an overlay share cannot be mounted", When::Overlay, Load::Plan),
    Requirement {
        option: "CONFIG_INET",
        module: None,
        why: "the guest has no IPv4 for --network",
        when: When::Network,
        load: Load::Never,
        strict: true,
        refuses: true,
    },
    module(
        "CONFIG_VIRTIO_NET",
        "virtio_net",
        "the guest has no network device for --network",
        When::Network,
        Load::Plan,
    ),
    Requirement {
        option: "CONFIG_CONFIGFS_FS",
        module: Some("configfs"),
        why: "the guest gets no /sys/kernel/config",
        when: When::Always,
        load: Load::Plan,
        strict: false,
        refuses: false,
    },
    asked("CONFIG_VIRTIO_BLK", Some("virtio_blk"), "--disk needs virtio-blk", When::Disks, Load::Plan, true),
    asked("CONFIG_NUMA", None, "--numa needs NUMA support", When::Numa, Load::Never, true),
    asked(
        "CONFIG_ACPI_NUMA",
        None,
        "the guest learns its NUMA nodes from QEMU's ACPI SRAT table; without it, it sees one node",
        When::Numa,
        Load::Never,
        true,
    ),
    // Every run, so a dump (`--vmcore`, `kdf dump`) carries the kernel's
    // vmcoreinfo (what drgn needs): about 1 ms of a kdf kernel's boot, and
    // 5-20 ms to load the module (Debian 6.1, TCG). Loaded at boot, so a panic
    // before the plan arrives still has it.
    asked(
        "CONFIG_FW_CFG_SYSFS",
        Some("qemu_fw_cfg"),
        "the kernel cannot tell QEMU where its vmcoreinfo is; a dump lacks it",
        When::Always,
        Load::Boot,
        false,
    ),
];

/// What about a run decides which requirements apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vm {
    pub machine: Machine,
    pub transport: Transport,
    pub overlay: bool,
    pub network: bool,
    pub disks: bool,
    pub numa: bool,
}

impl Vm {
    /// A VM without a network, disks or NUMA nodes.
    pub fn plain(machine: Machine, transport: Transport, overlay: bool) -> Vm {
        Vm { machine, transport, overlay, network: false, disks: false, numa: false }
    }
}

impl When {
    fn applies(self, vm: &Vm) -> bool {
        match self {
            When::Always => true,
            When::Pci => vm.machine.pci(),
            When::Mmio => !vm.machine.pci(),
            When::X86 => matches!(vm.machine, Machine::Q35 | Machine::Microvm { .. }),
            When::Virt => matches!(vm.machine, Machine::Virt { .. }),
            When::Shares(t) => vm.transport == t,
            When::Overlay => vm.overlay,
            When::Disks => vm.disks,
            When::Numa => vm.numa,
            When::Network => vm.network,
        }
    }
}

/// The requirements of one run, in table order.
pub fn of(vm: &Vm) -> impl Iterator<Item = &'static Requirement> + '_ {
    TABLE.iter().filter(move |r| r.when.applies(vm))
}

/// Why a kernel cannot run a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// The option is not set.
    Lacks(&'static Requirement),
    /// The option is `=m` but kdf has no modules to load it from.
    NoModules(&'static Requirement),
}

/// Checks a kernel's config against the run's refusing requirements.
/// `has_modules`: kdf found the kernel's module directory.
pub fn check(config: &KernelConfig, vm: &Vm, has_modules: bool) -> Result<(), Miss> {
    let strict: Vec<_> = of(vm).filter(|r| r.strict || r.refuses).collect();
    if let Some(r) = strict.iter().find(|r| !config.enabled(r.option)) {
        return Err(Miss::Lacks(r));
    }
    match strict.iter().find(|r| r.module.is_some() && config.module(r.option)) {
        Some(r) if !has_modules => Err(Miss::NoModules(r)),
        _ => Ok(()),
    }
}

fn modules(vm: &Vm, load: Load) -> Vec<String> {
    of(vm).filter(|r| r.load == load).filter_map(|r| r.module).map(String::from).collect()
}

/// The modules kdf-init loads before it opens the channel (`kdf.preload`).
pub fn boot_modules(vm: &Vm) -> Vec<String> {
    modules(vm, Load::Boot)
}

/// The modules the run's plan asks kdf-init to load.
pub fn plan_modules(vm: &Vm) -> Vec<String> {
    modules(vm, Load::Plan)
}

/// Every module any run may need: what kdf's initramfs carries where the
/// kernel has it as `=m`.
pub fn initramfs_modules() -> impl Iterator<Item = &'static str> {
    TABLE.iter().filter(|r| r.load != Load::Never).filter_map(|r| r.module)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kconfig::fragment::Fragment;

    // The fragments `kdf kernel config` uses (and the Nix builders read).
    // x86's own options (its serial console, PVH) are in x86_64.config.
    const VM_CONFIG: &str =
        concat!(include_str!("../../../configs/vm.config"), include_str!("../../../configs/x86_64.config"));
    const FAST_CONFIG: &str = include_str!("../../../configs/fast.config");

    const MACHINES: [Machine; 3] =
        [Machine::Q35, Machine::Microvm { acpi: false }, Machine::Microvm { acpi: true }];
    const ARM64_MACHINES: [Machine; 2] = [Machine::Virt { pci: false }, Machine::Virt { pci: true }];

    fn every_vm() -> Vec<Vm> {
        let mut out = Vec::new();
        for machine in MACHINES.into_iter().chain(ARM64_MACHINES) {
            for transport in [Transport::Virtiofs, Transport::NineP] {
                for overlay in [false, true] {
                    for network in [false, true] {
                        let vm = Vm { network, ..Vm::plain(machine, transport, overlay) };
                        out.push(vm);
                        out.push(Vm { disks: true, ..vm });
                    }
                }
            }
        }
        out
    }

    fn config(text: &str) -> KernelConfig {
        KernelConfig::parse(text, "test").unwrap()
    }

    #[test]
    fn vm_config_sets_every_option_in_the_table() {
        let vm = Fragment::parse(VM_CONFIG, "configs/vm.config").unwrap();
        let fast = Fragment::parse(FAST_CONFIG, "configs/fast.config").unwrap();
        let yes = crate::kconfig::fragment::Value::Yes;
        for r in TABLE {
            let where_ = if r.strict { "configs/vm.config" } else { "configs/vm.config or fast.config" };
            let set = *vm.value(r.option) == yes || (!r.strict && *fast.value(r.option) == yes);
            // ACPI_NUMA: not in the fast profile (no ACPI there); --numa needs another kernel.
            // arm64's rows come from the arm64 fragment.
            assert!(
                set || r.option == "CONFIG_ACPI_NUMA" || r.when == When::Virt,
                "{} is in the requirement table but not =y in {where_}",
                r.option
            );
        }
    }

    #[test]
    fn the_fast_profile_boots_on_every_machine_and_transport() {
        let text = format!("{VM_CONFIG}\n{FAST_CONFIG}");
        let fast = config(&text);
        // (x86's fragments: the arm64 ones add the PL011 console.)
        for vm in every_vm().into_iter().filter(|vm| MACHINES.contains(&vm.machine)) {
            assert_eq!(check(&fast, &vm, false), Ok(()), "{vm:?}");
        }
        // It has CONFIG_NUMA but no ACPI: the guest could not see QEMU's nodes.
        let numa = Vm { numa: true, ..Vm::plain(Machine::Q35, Transport::Virtiofs, false) };
        match check(&fast, &numa, false) {
            Err(Miss::Lacks(r)) => assert_eq!(r.option, "CONFIG_ACPI_NUMA"),
            other => panic!("{other:?}"),
        }
        assert!(fast.enabled("CONFIG_FW_CFG_SYSFS_CMDLINE"), "fw_cfg is found without ACPI");
    }

    #[test]
    fn what_a_run_asks_for_is_not_what_every_kdf_kernel_needs() {
        for r in TABLE.iter().filter(|r| matches!(r.when, When::Disks | When::Numa)) {
            assert!(!r.strict, "{} would be forced into every kdf kernel", r.option);
        }
        let all: String = TABLE.iter().filter(|r| r.strict).map(|r| format!("{}=y\n", r.option)).collect();
        let plain = Vm::plain(Machine::Q35, Transport::Virtiofs, false);
        assert_eq!(check(&config(&all), &plain, false), Ok(()));
        let disks = Vm { disks: true, ..plain };
        match check(&config(&all), &disks, false) {
            Err(Miss::Lacks(r)) => assert_eq!(r.option, "CONFIG_VIRTIO_BLK"),
            other => panic!("{other:?}"),
        }
        let distro = config(&format!("{all}CONFIG_VIRTIO_BLK=m\nCONFIG_FW_CFG_SYSFS=m\n"));
        assert_eq!(check(&distro, &disks, true), Ok(()));
        assert_eq!(plan_modules(&disks), ["virtiofs", "configfs", "virtio_blk"]);
        assert_eq!(check(&config(&all), &plain, false), Ok(()), "a dump without vmcoreinfo is still a dump");
    }

    #[test]
    fn a_missing_option_is_named_in_table_order() {
        let all: String = TABLE.iter().map(|r| format!("{}=y\n", r.option)).collect();
        let vm = Vm::plain(Machine::Q35, Transport::Virtiofs, false);
        assert_eq!(check(&config(&all), &vm, false), Ok(()));
        let without = all.replace("CONFIG_VIRTIO_CONSOLE=y\n", "").replace("CONFIG_VIRTIO_FS=y\n", "");
        match check(&config(&without), &vm, false) {
            Err(Miss::Lacks(r)) => assert_eq!(r.option, "CONFIG_VIRTIO_CONSOLE"),
            other => panic!("{other:?}"),
        }
        // Optional ones never refuse a run.
        let no_configfs = all.replace("CONFIG_CONFIGFS_FS=y\n", "");
        assert_eq!(check(&config(&no_configfs), &vm, false), Ok(()));
    }

    #[test]
    fn a_modular_requirement_needs_the_kernels_modules() {
        let all: String = TABLE.iter().map(|r| format!("{}=y\n", r.option)).collect();
        let modular = config(&all.replace("CONFIG_VIRTIO_FS=y", "CONFIG_VIRTIO_FS=m"));
        let vm = Vm::plain(Machine::Q35, Transport::Virtiofs, false);
        match check(&modular, &vm, false) {
            Err(Miss::NoModules(r)) => assert_eq!(r.option, "CONFIG_VIRTIO_FS"),
            other => panic!("{other:?}"),
        }
        assert_eq!(check(&modular, &vm, true), Ok(()));
        // Over 9p, virtiofs being modular does not matter.
        let nine_p = Vm { transport: Transport::NineP, ..vm };
        assert_eq!(check(&modular, &nine_p, false), Ok(()));
    }

    #[test]
    fn module_lists_follow_the_machine_transport_and_shares() {
        let q35 = Vm::plain(Machine::Q35, Transport::Virtiofs, false);
        assert_eq!(boot_modules(&q35), ["virtio_pci", "virtio_console", "qemu_fw_cfg"]);
        assert_eq!(plan_modules(&q35), ["virtiofs", "configfs"]);
        let microvm =
            Vm { network: true, ..Vm::plain(Machine::Microvm { acpi: false }, Transport::NineP, true) };
        assert_eq!(boot_modules(&microvm), ["virtio_mmio", "virtio_console", "qemu_fw_cfg"]);
        assert_eq!(plan_modules(&microvm), ["9pnet_virtio", "9p", "overlay", "virtio_net", "configfs"]);
    }

    #[test]
    fn arm64_virt_needs_the_pl011_console_and_its_transports_module() {
        // Debian arm64 6.1's settings of the rows that matter.
        let debian = config(
            "CONFIG_BLK_DEV_INITRD=y\nCONFIG_DEVTMPFS=y\nCONFIG_TMPFS=y\nCONFIG_SERIAL_AMBA_PL011_CONSOLE=y\n\
             CONFIG_VIRTIO_MMIO=m\nCONFIG_VIRTIO_PCI=m\nCONFIG_VIRTIO_CONSOLE=m\nCONFIG_VIRTIO_FS=m\n\
             CONFIG_OVERLAY_FS=m\nCONFIG_FW_CFG_SYSFS=m\n",
        );
        let virt = Vm::plain(Machine::Virt { pci: false }, Transport::Virtiofs, true);
        assert_eq!(check(&debian, &virt, true), Ok(()), "no 8250 console needed on arm64");
        assert_eq!(boot_modules(&virt), ["virtio_mmio", "virtio_console", "qemu_fw_cfg"]);
        assert_eq!(plan_modules(&virt), ["virtiofs", "overlay", "configfs"]);
        let pci = Vm::plain(Machine::Virt { pci: true }, Transport::Virtiofs, false);
        assert_eq!(boot_modules(&pci)[0], "virtio_pci");
        let no_console = config(
            "CONFIG_BLK_DEV_INITRD=y\nCONFIG_DEVTMPFS=y\nCONFIG_TMPFS=y\nCONFIG_SERIAL_8250_CONSOLE=y\n",
        );
        match check(&no_console, &virt, true) {
            Err(Miss::Lacks(r)) => assert_eq!(r.option, "CONFIG_SERIAL_AMBA_PL011_CONSOLE"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_initramfs_carries_every_module_any_run_loads() {
        let all: Vec<&str> = initramfs_modules().collect();
        for vm in every_vm() {
            for m in boot_modules(&vm).iter().chain(&plan_modules(&vm)) {
                assert!(all.contains(&m.as_str()), "{m} for {vm:?}");
            }
        }
    }
}
