//! Which kernel to boot, and everything known about it: the file QEMU boots
//! (a PVH `vmlinux` where possible), its release, its modules and its config.

pub mod boot;
pub mod build_dir;
pub mod config;
pub mod image;
pub mod installed;
pub mod nix_kernel;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::errors::hinted;
pub use config::KernelConfig;

/// Where the user said the kernel is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--kernel PATH`: a bzImage, a `vmlinux`, or a kernel build directory.
    Path(PathBuf),
    /// `--release [VERSION]`: a kernel installed on the host; newest if `None`.
    Release(Option<String>),
    /// `--release nix[:X.Y]`: nixpkgs' `linuxPackages[_X_Y]`.
    Nix(Option<String>),
}

impl Source {
    /// `--release`'s value: `nix`, `nix:6.12`, a version, or empty (newest).
    pub fn from_release(value: &str) -> Source {
        match value {
            "" => Source::Release(None),
            "nix" => Source::Nix(None),
            v => match v.strip_prefix("nix:") {
                Some(series) => Source::Nix(Some(series.to_string())),
                None => Source::Release(Some(v.to_string())),
            },
        }
    }
}

/// A kernel ready to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The file the user's choice resolved to.
    pub image: PathBuf,
    /// What QEMU boots: `image`, or the PVH `vmlinux` extracted from it.
    pub boot: PathBuf,
    pub release: Option<String>,
    /// A directory with `modules.dep` for this kernel, if it has modules.
    pub modules_dir: Option<PathBuf>,
    /// A host directory the guest mounts on `/lib/modules` (when the kernel's
    /// modules are not already at `/lib/modules/<release>` on the host).
    pub guest_modules: Option<PathBuf>,
    pub config: Option<KernelConfig>,
}

pub fn resolve(source: &Source) -> Result<Kernel> {
    match source {
        Source::Path(p) if p.is_dir() => build_dir::resolve(p),
        Source::Path(p) => from_file(p),
        Source::Release(v) => installed::resolve(v.as_deref()),
        Source::Nix(series) => nix_kernel::resolve(series.as_deref()),
    }
}

/// Reads a kernel file, with the errors people actually hit named.
pub fn read_image(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => hinted(
            format!("cannot read the kernel {}: permission denied", path.display()),
            "Ubuntu installs /boot/vmlinuz-* readable by root only (mode 0600): \
             `sudo chmod 0644 /boot/vmlinuz-*`, or pass --kernel with a readable copy",
        ),
        std::io::ErrorKind::NotFound => hinted(
            format!("the kernel {} does not exist", path.display()),
            "pass --kernel with a bzImage, a vmlinux or a kernel build directory, \
             or --release for an installed kernel",
        ),
        _ => anyhow::Error::new(e).context(format!("failed to read the kernel {}", path.display())),
    })
}

/// A kernel given as a file: its release (from the image) finds its modules
/// and config when they are installed on the host.
pub fn from_file(path: &Path) -> Result<Kernel> {
    let bytes = read_image(path)?;
    let kind = image::kind(&bytes).ok_or_else(|| {
        hinted(
            format!("{} is not a Linux kernel image (no bzImage header, no ELF magic)", path.display()),
            "pass a bzImage (arch/x86/boot/bzImage, /boot/vmlinuz-*), a vmlinux, or a build directory",
        )
    })?;
    let release = match kind {
        image::Kind::BzImage => image::bzimage_release(&bytes),
        image::Kind::Elf => image::elf_release(&bytes),
    };
    let boot = boot::bootable(path, &bytes, kind)?;
    let (boot_dir, modules_root) = installed::dirs();
    let installed = release.as_deref().map(|r| modules_root.join(r));
    let modules_dir = installed.filter(|d| d.join("modules.dep").exists());
    let config = match &release {
        Some(r) => read_config(&boot_dir.join(format!("config-{r}")))?,
        None => None,
    };
    Ok(Kernel { image: path.to_path_buf(), boot, release, modules_dir, guest_modules: None, config })
}

/// A `.config` if the file exists.
pub fn read_config(path: &Path) -> Result<Option<KernelConfig>> {
    match std::fs::read_to_string(path) {
        Ok(text) => KernelConfig::parse(&text, &path.display().to_string())
            .map(Some)
            .with_context(|| format!("failed to read the kernel config {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("failed to read the kernel config {}", path.display())),
    }
}

/// Orders version strings the way people read them: `6.1.10` after `6.1.9`.
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, xa), (db, xb)) in ca.iter().zip(&cb) {
        let ord = if *da && *db {
            let (na, nb) = (xa.trim_start_matches('0'), xb.trim_start_matches('0'));
            na.len().cmp(&nb.len()).then(na.cmp(nb))
        } else {
            xa.cmp(xb)
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn release_values_pick_the_source() {
        assert_eq!(Source::from_release(""), Source::Release(None));
        assert_eq!(Source::from_release("6.1.0-56-amd64"), Source::Release(Some("6.1.0-56-amd64".into())));
        assert_eq!(Source::from_release("nix"), Source::Nix(None));
        assert_eq!(Source::from_release("nix:6.12"), Source::Nix(Some("6.12".into())));
    }

    #[test]
    fn versions_order_numerically() {
        assert_eq!(version_cmp("6.1.10-amd64", "6.1.9-amd64"), Greater);
        assert_eq!(version_cmp("6.1.0-56-amd64", "6.1.0-9-amd64"), Greater);
        assert_eq!(version_cmp("6.10", "6.9.1"), Greater);
        assert_eq!(version_cmp("6.1", "6.1"), Equal);
        assert_eq!(version_cmp("6.1", "6.1.1"), Less);
    }

    #[test]
    fn a_file_that_is_not_a_kernel_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notes.txt");
        std::fs::write(&p, "hello").unwrap();
        let err = from_file(&p).unwrap_err();
        assert!(format!("{err:#}").contains("is not a Linux kernel image"), "{err:#}");
    }
}
