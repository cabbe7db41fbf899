//! The QEMU command line, a pure function of a resolved [`VmSpec`]: probing
//! KVM, finding binaries and creating sockets all happen before.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;

use super::disk::{self, DiskDevice};
use super::network::{self, UserNet};
use super::numa::{self, Numa};
use super::option::escape_os;

/// CPU virtualisation backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

/// The machine QEMU emulates, and with it the virtio transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// PCI: works with any kernel that has CONFIG_VIRTIO_PCI.
    Q35,
    /// No PCI, no firmware to speak of: the fastest boot. Its virtio-mmio
    /// devices are found through ACPI (`acpi: true`) or, without ACPI, through
    /// `virtio_mmio.device=` arguments QEMU adds to the command line (the
    /// kernel needs CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES).
    Microvm { acpi: bool },
    /// arm64's `virt`: virtio over MMIO (found in the device tree QEMU
    /// writes) or, where the kernel has only CONFIG_VIRTIO_PCI, over PCIe.
    Virt { pci: bool },
}

impl Machine {
    /// A virtio device's QEMU name on this machine's bus (`virtio-serial` ->
    /// `virtio-serial-pci` or `virtio-serial-device`).
    fn device(self, base: &str) -> String {
        match self.pci() {
            true => format!("{base}-pci"),
            false => format!("{base}-device"),
        }
    }

    /// Whether virtio devices sit on PCI.
    pub fn pci(self) -> bool {
        matches!(self, Machine::Q35 | Machine::Virt { pci: true })
    }
}

/// How the guest reaches one shared host directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareDevice {
    /// vhost-user-fs: `fd` is QEMU's end of a connection a virtiofsd accepts.
    Virtiofs { tag: String, fd: RawFd },
    /// QEMU's built-in 9p server.
    NineP { tag: String, path: PathBuf, readonly: bool },
}

/// QEMU's QMP monitors, each a descriptor kdf hands over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Monitors {
    /// One end of a socket pair that only kdf talks on (`--vmcore`).
    pub private_fd: Option<RawFd>,
    /// A listening socket for other clients, one at a time (`kdf qmp`, `kdf dump`).
    pub listen_fd: Option<RawFd>,
}

/// QEMU's gdb stub on a socket kdf listens on (bound to 127.0.0.1 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GdbStub {
    /// The listening socket, passed as this descriptor.
    pub fd: RawFd,
    /// Stop the CPU before its first instruction until a debugger continues.
    pub wait: bool,
}

/// Everything QEMU needs, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub qemu: PathBuf,
    pub accel: Accel,
    pub machine: Machine,
    pub cpus: u32,
    pub memory_mib: u64,
    /// `-bios`: qboot where it works (faster than SeaBIOS), else QEMU's default.
    pub firmware: Option<PathBuf>,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub cmdline: String,
    /// One end of a socketpair for the serial console.
    pub console_fd: RawFd,
    /// One end of a socketpair for kdf's virtio-serial channel.
    pub channel_fd: RawFd,
    /// One end of a socketpair for the attach channel (`kdf attach`, `kdf sysrq`).
    pub attach_fd: RawFd,
    pub shares: Vec<ShareDevice>,
    /// QMP monitors: kdf's own and the one `kdf qmp`/`kdf dump` connect to.
    pub monitors: Monitors,
    /// `--disk`: virtio-blk devices, in order.
    pub disks: Vec<DiskDevice>,
    /// `--numa`: nodes, each with its own memory backend.
    pub numa: Numa,
    /// The gdb stub (`-d`).
    pub gdb: Option<GdbStub>,
    /// `--network user`: a virtio-net device on QEMU's user-mode network.
    pub network: Option<UserNet>,
    /// `--qemu-arg` values, appended last.
    pub extra: Vec<OsString>,
}

fn machine_args(spec: &VmSpec) -> Vec<String> {
    let (accel, cpu) = match (spec.accel, spec.machine) {
        (Accel::Kvm, _) => ("kvm", "host"),
        // Plain `max` emulates pointer authentication with the QARMA5 cipher:
        // Debian 6.1 reached its root mount in 6.9 s under TCG, against 1.9 s
        // with QEMU's cheap implementation-defined algorithm, which keeps
        // every feature (pointer authentication included) the kernel's
        // code paths depend on (docs/decisions.md).
        (Accel::Tcg, Machine::Virt { .. }) => ("tcg", "max,pauth-impdef=on"),
        (Accel::Tcg, _) => ("tcg", "max"),
    };
    let machine = match spec.machine {
        Machine::Q35 => "q35".to_string(),
        Machine::Microvm { acpi } => format!("microvm,acpi={}", if acpi { "on" } else { "off" }),
        // GICv2 (virt's default) stops at 8 CPUs; `max` is the host's under
        // KVM and GICv3 under TCG.
        Machine::Virt { .. } => "virt,gic-version=max".to_string(),
    };
    // With NUMA nodes each has its own backend and `-machine memory-backend`
    // must not be given (QEMU: "total memory for NUMA nodes (0x0) should
    // equal RAM size").
    let backend = if spec.numa.nodes.is_empty() { ",memory-backend=mem" } else { "" };
    let mut out = vec![
        "-machine".into(),
        format!("{machine},accel={accel}{backend}"),
        "-cpu".into(),
        cpu.into(),
        "-smp".into(),
        // QEMU makes CPUs cores of one socket, sharing a last-level cache:
        // in two nodes, the guest warns ("CPU #1's llc-sibling CPU #0 is not
        // on the same node", a splat in topology_sane). A socket per CPU
        // fits any --numa layout.
        match spec.numa.nodes.is_empty() {
            true => spec.cpus.to_string(),
            false => format!("{0},sockets={0},cores=1,threads=1", spec.cpus),
        },
        "-m".into(),
        format!("{}M", spec.memory_mib),
    ];
    if spec.numa.nodes.is_empty() {
        // virtiofs needs guest RAM that virtiofsd can map: a shared memfd.
        out.extend([
            "-object".into(),
            format!("memory-backend-memfd,id=mem,size={}M,share=on", spec.memory_mib),
        ]);
    }
    out.extend(numa::args(&spec.numa));
    out
}

fn base_args() -> Vec<String> {
    [
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        // Paired with `reboot=t` on the kernel command line: the guest's reset
        // (a triple fault) ends QEMU instead of rebooting, with or without ACPI.
        "-no-reboot",
    ]
    .map(String::from)
    .to_vec()
}

fn boot_args(spec: &VmSpec) -> Vec<OsString> {
    let firmware = spec.firmware.iter().flat_map(|f| [OsString::from("-bios"), f.clone().into()]);
    firmware
        .chain([
            "-kernel".into(),
            spec.kernel.clone().into(),
            "-initrd".into(),
            spec.initramfs.clone().into(),
            "-append".into(),
            spec.cmdline.clone().into(),
        ])
        .collect()
}

fn console_args(spec: &VmSpec) -> Vec<String> {
    vec![
        "-chardev".into(),
        format!("socket,id=console,fd={}", spec.console_fd),
        "-serial".into(),
        "chardev:console".into(),
    ]
}

/// Two ports on one virtio-serial device: the run's channel and the attach
/// channel. A second port is a second pair of queues on the same device (no
/// device to probe, no module to load). Port 0 is reserved for a console
/// (QEMU refuses another port there), so the two are ports 1 and 2.
fn channel_args(spec: &VmSpec) -> Vec<String> {
    vec![
        "-device".into(),
        format!("{},id=vser,max_ports=3", spec.machine.device("virtio-serial")),
        "-chardev".into(),
        format!("socket,id=channel,fd={}", spec.channel_fd),
        "-device".into(),
        format!("virtserialport,bus=vser.0,chardev=channel,name={}", kdf_proto::PORT_NAME),
        "-chardev".into(),
        format!("socket,id=attach,fd={}", spec.attach_fd),
        "-device".into(),
        format!("virtserialport,bus=vser.0,chardev=attach,name={}", kdf_proto::ATTACH_PORT_NAME),
    ]
}

fn share_args(machine: Machine, share: &ShareDevice, index: usize) -> Vec<OsString> {
    match share {
        ShareDevice::Virtiofs { tag, fd } => vec![
            "-chardev".into(),
            format!("socket,id=fs{index},fd={fd}").into(),
            "-device".into(),
            format!("{},chardev=fs{index},tag={tag}", machine.device("vhost-user-fs")).into(),
        ],
        ShareDevice::NineP { tag, path, readonly } => {
            let mut fsdev = OsString::from(format!("local,id=fs{index},security_model=none,multidevs=remap"));
            if *readonly {
                fsdev.push(",readonly=on");
            }
            fsdev.push(",path=");
            // Paths may hold any byte but NUL; only the comma is special here.
            fsdev.push(escape_os(path.as_os_str()));
            vec![
                "-fsdev".into(),
                fsdev,
                "-device".into(),
                format!("{},fsdev=fs{index},mount_tag={tag}", machine.device("virtio-9p")).into(),
            ]
        }
    }
}

fn monitor_args(spec: &VmSpec) -> Vec<String> {
    let mut out = Vec::new();
    let mut monitor = |id: &str, options: &str| {
        out.extend([
            "-chardev".into(),
            format!("socket,id={id},{options}"),
            "-mon".into(),
            format!("chardev={id},mode=control"),
        ]);
    };
    if let Some(fd) = spec.monitors.private_fd {
        monitor("qmp", &format!("fd={fd}"));
    }
    if let Some(fd) = spec.monitors.listen_fd {
        // kdf bound the socket; QEMU accepts on it, one client at a time.
        monitor("qmp-listen", &format!("fd={fd},server=on,wait=off"));
    }
    // The guest tells QEMU (through fw_cfg) where its vmcoreinfo note is, so
    // a dump (--vmcore, kdf dump) carries it; drgn cannot do without it.
    out.extend(["-device".into(), "vmcoreinfo".into()]);
    out
}

fn network_args(spec: &VmSpec) -> Vec<String> {
    let Some(net) = &spec.network else { return Vec::new() };
    let mut device = format!("{},netdev=net0", spec.machine.device("virtio-net"));
    if spec.machine.pci() {
        // No option ROM: nothing boots from the network, and QEMU would
        // otherwise need iPXE's efi-virtio.rom to start at all.
        device.push_str(",romfile=");
    }
    vec!["-netdev".into(), network::netdev(net, "net0"), "-device".into(), device]
}

/// kdf binds the stub's socket itself (port 0: the kernel picks a free one)
/// and QEMU serves on it: with `-gdb tcp::PORT` two parallel runs would race
/// for a port, and kdf could not tell which one a run got. `wait=off`: QEMU
/// starts without a debugger; `-S` stops the CPU instead. `nodelay=on`, as
/// `-gdb tcp:` sets it: without it every packet waited for a delayed ACK, and
/// `lx-dmesg` took 33 s instead of ~1.
fn gdb_args(spec: &VmSpec) -> Vec<String> {
    let Some(gdb) = spec.gdb else { return Vec::new() };
    let mut out = vec![
        "-chardev".into(),
        format!("socket,id=gdb,fd={},server=on,wait=off,nodelay=on", gdb.fd),
        "-gdb".into(),
        "chardev:gdb".into(),
    ];
    if gdb.wait {
        out.push("-S".into());
    }
    out
}

/// The complete argv, program first.
pub fn argv(spec: &VmSpec) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec![spec.qemu.clone().into()];
    let strings = |v: Vec<String>| v.into_iter().map(OsString::from);
    out.extend(strings(base_args()));
    out.extend(strings(machine_args(spec)));
    out.extend(boot_args(spec));
    out.extend(strings(console_args(spec)));
    out.extend(strings(channel_args(spec)));
    for (i, share) in spec.shares.iter().enumerate() {
        out.extend(share_args(spec.machine, share, i));
    }
    out.extend(disk::args(&spec.machine.device("virtio-blk"), &spec.disks));
    out.extend(strings(monitor_args(spec)));
    out.extend(strings(network_args(spec)));
    out.extend(strings(gdb_args(spec)));
    out.extend(spec.extra.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        VmSpec {
            qemu: "qemu-system-x86_64".into(),
            accel: Accel::Tcg,
            machine: Machine::Q35,
            firmware: Some("/usr/share/qemu/qboot.rom".into()),
            cpus: 2,
            memory_mib: 512,
            kernel: "/boot/vmlinux".into(),
            initramfs: "/cache/i.cpio".into(),
            cmdline: "console=ttyS0".into(),
            console_fd: 5,
            channel_fd: 6,
            attach_fd: 8,
            shares: vec![
                ShareDevice::Virtiofs { tag: "kdf0".into(), fd: 7 },
                ShareDevice::NineP { tag: "kdf1".into(), path: "/tmp/a,b c".into(), readonly: true },
            ],
            monitors: Monitors { private_fd: Some(8), listen_fd: Some(9) },
            disks: Vec::new(),
            numa: Numa::default(),
            gdb: Some(GdbStub { fd: 69, wait: false }),
            network: None,
            extra: vec!["-device".into(), "virtio-rng-pci".into()],
        }
    }

    fn joined(spec: &VmSpec) -> String {
        argv(spec).iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn tcg_uses_cpu_max_and_kvm_cpu_host() {
        let mut s = spec();
        assert!(joined(&s).contains("-machine q35,accel=tcg,memory-backend=mem -cpu max"));
        s.accel = Accel::Kvm;
        assert!(joined(&s).contains("accel=kvm,memory-backend=mem -cpu host"));
    }

    #[test]
    fn firmware_is_passed_only_when_chosen() {
        let mut s = spec();
        assert!(joined(&s).contains("-bios /usr/share/qemu/qboot.rom -kernel /boot/vmlinux"));
        s.firmware = None;
        assert!(!joined(&s).contains("-bios"));
    }

    #[test]
    fn microvm_uses_mmio_devices_and_the_mmio_transport() {
        let mut s = spec();
        s.machine = Machine::Microvm { acpi: false };
        s.extra.clear();
        s.disks = vec![DiskDevice {
            backing: disk::Backing::Path("/d.img".into()),
            format: disk::Format::Raw,
            readonly: false,
            serial: "d.img".into(),
        }];
        let j = joined(&s);
        assert!(j.contains("-device virtio-blk-device,drive=disk0,serial=d.img"), "{j}");
        assert!(j.contains("-machine microvm,acpi=off,accel=tcg,memory-backend=mem"), "{j}");
        assert!(j.contains("virtio-serial-device,id=vser"), "{j}");
        assert!(j.contains("vhost-user-fs-device,chardev=fs0,tag=kdf0"), "{j}");
        assert!(j.contains("virtio-9p-device,fsdev=fs1"), "{j}");
        assert!(!j.contains("-pci"), "{j}");
    }

    #[test]
    fn the_network_is_a_virtio_net_device_on_either_bus() {
        let mut s = spec();
        assert!(!joined(&s).contains("-netdev"), "no network unless asked");
        s.network = Some(UserNet { forwards: vec![network::Forward { host: 8080, guest: 80 }] });
        let j = joined(&s);
        assert!(j.contains("-netdev user,id=net0,net=10.0.2.0/24,"), "{j}");
        assert!(j.contains("hostfwd=tcp:127.0.0.1:8080-10.0.2.15:80"), "{j}");
        assert!(j.contains("-device virtio-net-pci,netdev=net0,romfile= "), "{j}");
        s.machine = Machine::Microvm { acpi: false };
        let j = joined(&s);
        assert!(j.contains("-device virtio-net-device,netdev=net0 "), "{j}");
    }

    #[test]
    fn memory_is_a_shared_memfd_of_the_same_size() {
        let j = joined(&spec());
        assert!(j.contains("-m 512M"));
        assert!(j.contains("memory-backend-memfd,id=mem,size=512M,share=on"));
    }

    #[test]
    fn numa_nodes_replace_the_single_memory_backend() {
        let mut s = spec();
        s.numa = Numa {
            nodes: vec![
                numa::Node { memory_mib: 256, cpus: vec![(0, 0)] },
                numa::Node { memory_mib: 256, cpus: vec![(1, 1)] },
            ],
            distances: Vec::new(),
        };
        let j = joined(&s);
        assert!(j.contains("-machine q35,accel=tcg -cpu"), "no machine-wide backend: {j}");
        assert!(j.contains("-smp 2,sockets=2,cores=1,threads=1"), "a socket per CPU: {j}");
        assert!(!j.contains("id=mem,"), "{j}");
        assert!(j.contains("memory-backend-memfd,id=mem1,size=256M,share=on -numa node,nodeid=1,memdev=mem1"));
    }

    #[test]
    fn qmp_monitors_use_the_passed_descriptors_and_every_vm_has_vmcoreinfo() {
        let j = joined(&spec());
        assert!(j.contains("-chardev socket,id=qmp,fd=8 -mon chardev=qmp,mode=control"), "{j}");
        assert!(j.contains(
            "-chardev socket,id=qmp-listen,fd=9,server=on,wait=off -mon chardev=qmp-listen,mode=control"
        ));
        assert!(j.contains("-device vmcoreinfo"));
        let mut s = spec();
        s.monitors = Monitors::default();
        assert!(!joined(&s).contains("-mon") && joined(&s).contains("vmcoreinfo"));
    }

    #[test]
    fn console_and_channel_use_the_passed_descriptors() {
        let j = joined(&spec());
        assert!(j.contains("-chardev socket,id=console,fd=5 -serial chardev:console"));
        assert!(j.contains("socket,id=channel,fd=6"));
        assert!(j.contains(&format!("chardev=channel,name={}", kdf_proto::PORT_NAME)));
        assert!(j.contains("socket,id=attach,fd=8"));
        assert!(j.contains(&format!("bus=vser.0,chardev=attach,name={}", kdf_proto::ATTACH_PORT_NAME)));
    }

    #[test]
    fn shares_become_devices_with_commas_escaped() {
        let j = joined(&spec());
        assert!(j.contains("-chardev socket,id=fs0,fd=7 -device vhost-user-fs-pci,chardev=fs0,tag=kdf0"));
        assert!(j.contains(
            "-fsdev local,id=fs1,security_model=none,multidevs=remap,readonly=on,path=/tmp/a,,b c"
        ));
        assert!(j.contains("virtio-9p-pci,fsdev=fs1,mount_tag=kdf1"));
    }

    #[test]
    fn gdb_serves_on_kdfs_socket_and_extra_args_come_last() {
        let mut s = spec();
        let a = argv(&s);
        let j = joined(&s);
        assert!(
            j.contains("-chardev socket,id=gdb,fd=69,server=on,wait=off,nodelay=on -gdb chardev:gdb"),
            "{j}"
        );
        assert!(!j.contains(" -S"), "the CPU runs: {j}");
        assert_eq!(a[a.len() - 2..], [OsString::from("-device"), OsString::from("virtio-rng-pci")]);
        s.gdb = Some(GdbStub { fd: 69, wait: true });
        assert!(joined(&s).contains("-gdb chardev:gdb -S"));
        s.gdb = None;
        assert!(!joined(&s).contains("gdb"));
    }

    #[test]
    fn arm64_virt_uses_a_fast_tcg_cpu_and_its_machines_transport() {
        let mut s = spec();
        s.qemu = "qemu-system-aarch64".into();
        s.machine = Machine::Virt { pci: false };
        s.firmware = None;
        s.extra.clear();
        let j = joined(&s);
        assert!(
            j.contains("-machine virt,gic-version=max,accel=tcg,memory-backend=mem -cpu max,pauth-impdef=on")
        );
        assert!(
            j.contains("virtio-serial-device,id=vser") && j.contains("vhost-user-fs-device,chardev=fs0"),
            "{j}"
        );
        assert!(j.contains("-serial chardev:console") && !j.contains("-pci") && !j.contains("-bios"), "{j}");
        s.machine = Machine::Virt { pci: true };
        s.network = Some(UserNet { forwards: Vec::new() });
        let j = joined(&s);
        assert!(j.contains("virtio-serial-pci,id=vser") && j.contains("virtio-9p-pci,fsdev=fs1"), "{j}");
        assert!(j.contains("-device virtio-net-pci,netdev=net0,romfile="), "{j}");
        s.accel = Accel::Kvm;
        assert!(joined(&s).contains("accel=kvm,memory-backend=mem -cpu host"));
    }

    #[test]
    fn the_vm_always_exits_instead_of_rebooting() {
        let j = joined(&spec());
        assert!(j.contains("-no-reboot"));
        assert!(j.contains("-nodefaults"));
    }
}
