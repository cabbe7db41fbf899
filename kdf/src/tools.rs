//! Finding the host programs kdf runs: QEMU, virtiofsd, depmod, compilers.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::arch::Arch;
use crate::errors::hinted;

/// A regular file someone may execute.
fn is_executable(path: &Path) -> bool {
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds a program on PATH or, after it, in the extra directories.
pub fn which(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// QEMU for x86_64 guests: `KDF_QEMU`, else `qemu-system-x86_64` on PATH.
pub fn qemu(arch: Arch) -> Result<PathBuf> {
    let (binary, package) = arch.qemu();
    // KDF_QEMU replaces the x86_64 one (tests' fakes); KDF_QEMU_AARCH64 the arm64 one.
    let var = match arch {
        Arch::X86_64 => "KDF_QEMU",
        Arch::Arm64 => "KDF_QEMU_AARCH64",
    };
    std::env::var_os(var).map(PathBuf::from).or_else(|| which(binary, &[])).ok_or_else(|| {
        hinted(
            format!("QEMU for {arch} guests is not installed ({binary} not found on PATH)"),
            format!("sudo apt install {package} (or run scripts/setup.sh)"),
        )
    })
}

/// gdb for a guest of `arch`: `gdb` for the host's own, `gdb-multiarch` for
/// another (Debian's `gdb` debugs only the host's); `KDF_GDB` overrides both.
pub fn gdb_for(arch: Arch) -> Result<PathBuf> {
    if Arch::host() == Some(arch) || std::env::var_os("KDF_GDB").is_some() {
        return gdb();
    }
    gdb_multiarch().ok_or_else(|| {
        hinted(
            format!("debugging an {arch} guest needs gdb-multiarch (not found on PATH)"),
            "sudo apt install gdb-multiarch (or run scripts/setup.sh), or set KDF_GDB to a gdb that debugs it",
        )
    })
}

/// gdb-multiarch on PATH: the gdb of guests of another architecture.
pub fn gdb_multiarch() -> Option<PathBuf> {
    which("gdb-multiarch", &[])
}

/// The Rust virtiofsd: `KDF_VIRTIOFSD`, else on PATH or in /usr/libexec.
/// Never /usr/lib/qemu/virtiofsd: QEMU's old C daemon takes other flags.
pub fn virtiofsd() -> Option<PathBuf> {
    std::env::var_os("KDF_VIRTIOFSD").map(PathBuf::from).or_else(|| which("virtiofsd", &["/usr/libexec"]))
}

/// gdb: `KDF_GDB`, else `gdb` on PATH.
pub fn gdb() -> Result<PathBuf> {
    std::env::var_os("KDF_GDB").map(PathBuf::from).or_else(|| which("gdb", &[])).ok_or_else(|| {
        hinted(
            "gdb is not installed (gdb not found on PATH)",
            "sudo apt install gdb (Debian, Ubuntu), sudo dnf install gdb (Fedora), or nix shell nixpkgs#gdb",
        )
    })
}

/// depmod, which the kernel's `modules_install` otherwise expects at
/// /sbin/depmod (absent on NixOS).
pub fn depmod() -> Option<PathBuf> {
    which("depmod", &["/sbin", "/usr/sbin"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_skips_files_that_are_not_executable() {
        let dir = tempfile::tempdir().unwrap();
        let (plain, exe) = (dir.path().join("a/tool"), dir.path().join("b/tool"));
        for (p, mode) in [(&plain, 0o644), (&exe, 0o755)] {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        let found = which("tool", &[a.to_str().unwrap(), b.to_str().unwrap()]);
        assert_eq!(found, Some(exe));
    }
}
