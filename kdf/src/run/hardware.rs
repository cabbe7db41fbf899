//! What a VM gets beyond its console, channel and shares, resolved before
//! boot: `--disk` (checked files, named disks), `--numa` (checked against `-m`
//! and `--cpus`), `--vmcore` (where the dump goes, and what to open it with)
//! and `--qmp`; and the kernel arguments they need.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::arch::Arch;
use crate::cli::RunArgs;
use crate::disks::{self, Disk};
use crate::errors::{usage, usage_hinted};
use crate::kernel::Kernel;
use crate::vm::numa::{self, Numa};

/// Where x86 QEMU puts fw_cfg on every machine (selector, data, DMA at 0x514):
/// the `qemu_fw_cfg.ioport=` value for kernels that cannot find it through
/// ACPI (kdf's fast profile has no ACPI).
pub const FW_CFG_IOPORT: &str = "qemu_fw_cfg.ioport=12@0x510:0:1:4";

/// `--vmcore`: the file, and what helps reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vmcore {
    /// Absolute.
    pub path: PathBuf,
    /// The kernel's debug symbols, where kdf knows them (for the report).
    pub symbols: Option<PathBuf>,
    /// Why the dump will lack the kernel's vmcoreinfo, if it will.
    pub no_vmcoreinfo: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hardware {
    pub disks: Vec<Disk>,
    pub numa: Numa,
    pub vmcore: Option<Vmcore>,
    /// `--qmp SOCKET`, absolute.
    pub qmp: Option<PathBuf>,
}

pub fn resolve(args: &RunArgs, kernel: &Kernel, cwd: &Path) -> Result<Hardware> {
    let numa = Numa { nodes: args.numa.clone(), distances: args.numa_distances.clone() };
    numa::validate(&numa, args.cpus, args.memory)
        .map_err(|why| usage_hinted(why, "e.g. --cpus 2 -m 1G --numa 512M,cpus=0 --numa 512M,cpus=1"))?;
    let vmcore = match &args.vmcore {
        Some(path) => Some(vmcore(&cwd.join(path), kernel)?),
        None => None,
    };
    let qmp = match &args.qmp {
        Some(path) => Some(qmp_socket(&cwd.join(path))?),
        None => None,
    };
    Ok(Hardware { disks: disks::resolve(&args.disks, cwd)?, numa, vmcore, qmp })
}

fn vmcore(path: &Path, kernel: &Kernel) -> Result<Vmcore> {
    if path.is_dir() {
        return Err(usage(format!("--vmcore {} is a directory; name a file", path.display())));
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    if !parent.is_dir() {
        return Err(usage(format!("--vmcore {}: {} is not a directory", path.display(), parent.display())));
    }
    let config = kernel.config.as_ref();
    let no_vmcoreinfo = match config {
        Some(c) if !c.enabled("CONFIG_FW_CFG_SYSFS") => Some(
            "the kernel lacks CONFIG_FW_CFG_SYSFS, so it cannot tell QEMU where its vmcoreinfo is".into(),
        ),
        Some(c) if !c.builtin("CONFIG_ACPI") && !c.builtin("CONFIG_FW_CFG_SYSFS_CMDLINE") => {
            Some("the kernel has neither ACPI nor CONFIG_FW_CFG_SYSFS_CMDLINE to find QEMU's fw_cfg".into())
        }
        _ => None,
    };
    let symbols = crate::kernel::vmlinux::find(&kernel.image, kernel.release.as_deref());
    Ok(Vmcore { path: path.to_path_buf(), symbols, no_vmcoreinfo })
}

/// `--qmp SOCKET`: a new path kdf can bind.
fn qmp_socket(path: &Path) -> Result<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    if path.symlink_metadata().is_ok() {
        return Err(usage_hinted(
            format!("--qmp {} already exists", path.display()),
            "name a new path; kdf creates the socket and removes it at the end",
        ));
    }
    // sun_path holds 108 bytes with the terminating NUL.
    if path.as_os_str().as_bytes().len() >= 108 {
        return Err(usage(format!("--qmp {}: a Unix socket path must be under 108 bytes", path.display())));
    }
    Ok(path.to_path_buf())
}

/// The kernel arguments these need: an x86 kernel without ACPI is told where
/// fw_cfg is, so it writes its vmcoreinfo address there (every run: a dump
/// of any run carries it, for about 1 ms of boot; on arm64's virt machine
/// the device tree says where it is); with `--vmcore` a panic
/// waits for kdf (`panic=0`, after kdf's `panic=-1`: the later one wins)
/// instead of resetting.
pub fn kernel_args(hw: &Hardware, kernel: &Kernel) -> Vec<String> {
    let mut out = Vec::new();
    let cmdline_fw_cfg = kernel.arch == Arch::X86_64
        && kernel
            .config
            .as_ref()
            .is_some_and(|c| c.builtin("CONFIG_FW_CFG_SYSFS_CMDLINE") && !c.builtin("CONFIG_ACPI"));
    if cmdline_fw_cfg {
        out.push(FW_CFG_IOPORT.to_string());
    }
    if hw.vmcore.is_some() {
        out.push("panic=0".to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kconfig::config::KernelConfig;

    fn kernel(config: &str) -> Kernel {
        Kernel {
            image: "/b/vmlinux".into(),
            boot: "/b/vmlinux".into(),
            release: Some("7.3.4".into()),
            arch: crate::arch::Arch::X86_64,
            modules_dir: None,
            guest_modules: None,
            config: Some(KernelConfig::parse(config, "test").unwrap()),
        }
    }

    #[test]
    fn a_vmcore_run_waits_on_a_panic_and_every_run_finds_fw_cfg_without_acpi() {
        let hw = Hardware {
            vmcore: Some(Vmcore { path: "/w/core".into(), symbols: None, no_vmcoreinfo: None }),
            ..Default::default()
        };
        let fast = kernel("CONFIG_FW_CFG_SYSFS=y\nCONFIG_FW_CFG_SYSFS_CMDLINE=y\n");
        assert_eq!(kernel_args(&hw, &fast), [FW_CFG_IOPORT, "panic=0"]);
        let distro = kernel("CONFIG_ACPI=y\nCONFIG_FW_CFG_SYSFS=m\n");
        assert_eq!(kernel_args(&hw, &distro), ["panic=0"]);
        assert_eq!(kernel_args(&Hardware::default(), &fast), [FW_CFG_IOPORT]);
        assert!(kernel_args(&Hardware::default(), &distro).is_empty());
        let arm64 = Kernel { arch: Arch::Arm64, ..fast.clone() };
        assert!(kernel_args(&Hardware::default(), &arm64).is_empty(), "virt's device tree has fw_cfg");
    }

    #[test]
    fn a_vmcore_says_when_it_will_lack_vmcoreinfo() {
        let dir = tempfile::tempdir().unwrap();
        let core = dir.path().join("core");
        assert_eq!(
            vmcore(&core, &kernel("CONFIG_FW_CFG_SYSFS=y\nCONFIG_FW_CFG_SYSFS_CMDLINE=y\n"))
                .unwrap()
                .no_vmcoreinfo,
            None
        );
        assert!(vmcore(&core, &kernel("")).unwrap().no_vmcoreinfo.unwrap().contains("CONFIG_FW_CFG_SYSFS"));
        assert!(vmcore(&core, &kernel("CONFIG_FW_CFG_SYSFS=y\n")).unwrap().no_vmcoreinfo.is_some());
        assert!(vmcore(dir.path(), &kernel("")).is_err(), "a directory");
        assert!(vmcore(&dir.path().join("no/core"), &kernel("")).is_err(), "no parent");
    }

    #[test]
    fn a_qmp_socket_must_be_new_and_short() {
        let dir = tempfile::tempdir().unwrap();
        assert!(qmp_socket(&dir.path().join("q.sock")).is_ok());
        assert!(qmp_socket(dir.path()).is_err());
        assert!(qmp_socket(&dir.path().join("x".repeat(120))).is_err());
    }
}
