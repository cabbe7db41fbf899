//! Where a kernel's unstripped `vmlinux` (the ELF with its debug info, what
//! gdb reads) is: the file itself when the kernel is one, a build
//! directory's, or a distribution's debug-symbol package's.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::elf::Elf;
use crate::errors::hinted;

/// Where distributions install debug symbols (`/usr/lib/debug`).
pub const DEBUG_ROOT: &str = "/usr/lib/debug";

/// Where the `vmlinux` for the kernel `image` (a file or a build directory)
/// may be, most likely first. `is_elf`: the image is an ELF file already.
pub fn candidates(image: &Path, is_elf: bool, release: Option<&str>, debug_root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if image.is_dir() {
        out.push(image.join("vmlinux"));
    } else if is_elf {
        out.push(image.to_path_buf());
    }
    // BUILD/arch/<arch>/boot/bzImage: the build directory's vmlinux.
    let boot = image.parent().filter(|b| b.file_name().is_some_and(|n| n == "boot"));
    if let Some(build) = boot.and_then(Path::parent).and_then(Path::parent).and_then(Path::parent) {
        if boot.and_then(Path::parent).and_then(Path::parent).is_some_and(|a| a.ends_with("arch")) {
            out.push(build.join("vmlinux"));
        }
    }
    if let Some(r) = release {
        // Debian and Ubuntu (linux-image-R-dbg, -dbgsym), then Fedora and
        // SUSE (kernel-debuginfo), then a kernel installed from its build
        // directory (`make modules_install` links `build` to it).
        out.push(debug_root.join(format!("boot/vmlinux-{r}")));
        out.push(debug_root.join(format!("lib/modules/{r}/vmlinux")));
        out.push(PathBuf::from(format!("/lib/modules/{r}/build/vmlinux")));
    }
    out.dedup();
    out
}

/// Whether the file at `path` starts with the ELF magic.
pub fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"\x7fELF"
}

/// The first candidate that exists (for a run's record; whether it has
/// debug info is checked by `kdf gdb`, which reads it anyway).
pub fn find(image: &Path, release: Option<&str>) -> Option<PathBuf> {
    candidates(image, is_elf(image), release, Path::new(DEBUG_ROOT)).into_iter().find(|p| p.is_file())
}

/// Whether an ELF file carries DWARF (`.debug_info`).
pub fn has_debug_info(path: &Path) -> Result<bool> {
    let bytes = std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
    let elf = Elf::parse(&bytes).with_context(|| format!("{} is not an ELF file", path.display()))?;
    Ok(elf.section(".debug_info")?.is_some_and(|s| !s.is_empty()))
}

/// What to tell someone whose kernel has no `vmlinux` with debug info.
pub fn no_debug_info(kernel: &Path, release: Option<&str>, looked: &[PathBuf]) -> anyhow::Error {
    let list: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
    let distro = match release {
        Some(r) => format!("Debian: apt install linux-image-{r}-dbg; Ubuntu: linux-image-{r}-dbgsym"),
        None => "Debian: linux-image-<release>-dbg".to_string(),
    };
    hinted(
        format!(
            "no debug info for the kernel {} (no vmlinux with DWARF at {})",
            kernel.display(),
            list.join(", ")
        ),
        format!(
            "build the kernel with the fast or debug profile (kdf kernel config && kdf kernel build), \
             or install the distro's debug symbols ({distro}), or pass kdf gdb --kernel VMLINUX"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{Class, Endian, EM_X86_64};

    #[test]
    fn a_build_directorys_bzimage_points_at_its_vmlinux() {
        let c = candidates(Path::new("/b/arch/x86/boot/bzImage"), false, Some("7.3.4"), Path::new("/dbg"));
        assert_eq!(c[0], Path::new("/b/vmlinux"));
        assert_eq!(c[1], Path::new("/dbg/boot/vmlinux-7.3.4"));
    }

    #[test]
    fn a_vmlinux_is_its_own_and_a_distro_kernel_looks_in_the_debug_root() {
        let c = candidates(Path::new("/k/vmlinux"), true, None, Path::new("/dbg"));
        assert_eq!(c, [PathBuf::from("/k/vmlinux")]);
        let c = candidates(
            Path::new("/boot/vmlinuz-6.1.0-9-amd64"),
            false,
            Some("6.1.0-9-amd64"),
            Path::new("/dbg"),
        );
        assert_eq!(
            c,
            [
                PathBuf::from("/dbg/boot/vmlinux-6.1.0-9-amd64"),
                PathBuf::from("/dbg/lib/modules/6.1.0-9-amd64/vmlinux"),
                PathBuf::from("/lib/modules/6.1.0-9-amd64/build/vmlinux"),
            ]
        );
    }

    #[test]
    fn a_build_directory_is_searched_for_its_vmlinux() {
        let dir = tempfile::tempdir().unwrap();
        let c = candidates(dir.path(), false, None, Path::new("/dbg"));
        assert_eq!(c, [dir.path().join("vmlinux")]);
    }

    #[test]
    fn debug_info_is_a_debug_info_section() {
        let dir = tempfile::tempdir().unwrap();
        let with = dir.path().join("with");
        let without = dir.path().join("without");
        let elf = |sections: &[(&str, &[u8])]| {
            crate::elf::tests::build(Class::Elf64, Endian::Little, EM_X86_64, &[], sections)
        };
        std::fs::write(&with, elf(&[(".text", b"x"), (".debug_info", b"dwarf")])).unwrap();
        std::fs::write(&without, elf(&[(".text", b"x")])).unwrap();
        assert!(has_debug_info(&with).unwrap());
        assert!(!has_debug_info(&without).unwrap());
        assert!(is_elf(&with) && !is_elf(dir.path()));
        let err = no_debug_info(Path::new("/boot/vmlinuz-6.1"), Some("6.1"), &[with]);
        assert!(err.to_string().starts_with("no debug info for the kernel /boot/vmlinuz-6.1"), "{err}");
        assert!(crate::errors::hint_of(&err).unwrap().contains("linux-image-6.1-dbg"));
    }
}
