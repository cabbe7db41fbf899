//! A kernel ready to boot ([`Kernel`]), and reading one from a kernel file:
//! its release (from the image) finds its modules and config next to it, on
//! the host or in `--root` ([`super::places`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::boot;
use super::image::{self, Kind};
use super::places::{self, Places};
use crate::arch::Arch;
use crate::errors::hinted;
use crate::kconfig::config::KernelConfig;

/// A kernel ready to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The file the user's choice resolved to.
    pub image: PathBuf,
    /// What QEMU boots: `image`, or the PVH `vmlinux` extracted from it.
    pub boot: PathBuf,
    pub release: Option<String>,
    /// What it runs on (from the image's header or ELF machine).
    pub arch: Arch,
    /// A directory with `modules.dep` for this kernel, if it has modules.
    pub modules_dir: Option<PathBuf>,
    /// A host directory the guest mounts on `/lib/modules` (when the kernel's
    /// modules are not already at `/lib/modules/<release>` on the host).
    pub guest_modules: Option<PathBuf>,
    pub config: Option<KernelConfig>,
}

/// `/boot` and `/lib/modules`, or `KDF_BOOT_DIR`/`KDF_MODULES_DIR` for
/// unusual layouts (and tests).
pub fn host_dirs() -> (PathBuf, PathBuf) {
    let get =
        |var: &str, default: &str| std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| default.into());
    (get("KDF_BOOT_DIR", "/boot"), get("KDF_MODULES_DIR", "/lib/modules"))
}

/// Reads a kernel file, with the errors people actually hit named.
pub fn read_image(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| read_error(path, e))
}

/// How much of a kernel file [`read_head`] reads: a bzImage's header and
/// setup code (at most 128.5 KiB: `setup_sects` is a byte), which hold its
/// release.
pub const HEAD: u64 = 256 << 10;

/// The start of a kernel file ([`HEAD`] bytes, or all of a shorter one):
/// enough for a bzImage whose `vmlinux` is cached (reading all 8 MB of
/// Debian's on every run took ~8 ms).
pub fn read_head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(HEAD).read_to_end(&mut head))
        .map_err(|e| read_error(path, e))?;
    Ok(head)
}

fn read_error(path: &Path, e: std::io::Error) -> anyhow::Error {
    match e.kind() {
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
    }
}

/// A kernel given as a file: its release (from the image) finds its modules
/// and config next to it (an unpacked package), installed on the host, or in
/// `places.root`.
pub fn from_file(path: &Path, places: &Places) -> Result<Kernel> {
    let head = read_head(path)?;
    let kind = image::kind(&head).ok_or_else(|| {
        hinted(
            format!(
                "{} is not a Linux kernel image (no bzImage or arm64 Image header, no ELF magic)",
                path.display()
            ),
            "pass a bzImage (arch/x86/boot/bzImage, /boot/vmlinuz-*), an arm64 Image or Image.gz, \
             a vmlinux, or a build directory",
        )
    })?;
    // A bzImage's head says all that is needed here; the rest of it is read
    // only to extract a `vmlinux` not cached yet.
    let bytes = if kind == Kind::BzImage { head } else { read_image(path)? };
    let arch = image::arch(kind, &bytes).ok_or_else(|| {
        hinted(
            format!("{} is a kernel for an architecture kdf does not boot", path.display()),
            "kdf boots x86_64 and arm64 kernels",
        )
    })?;
    let release = image::release(kind, &bytes);
    let boot = boot::bootable(path, &bytes, kind)?;
    let (boot_dir, modules_root) = host_dirs();
    let root = places.root.as_deref();
    let modules = release
        .as_deref()
        .and_then(|r| places::find_modules(places::module_candidates(path, r, &modules_root, root)));
    let mut config = None;
    for candidate in release.iter().flat_map(|r| places::config_candidates(path, r, &boot_dir, root)) {
        config = read_config(&candidate)?;
        if config.is_some() {
            break;
        }
    }
    Ok(Kernel {
        image: path.to_path_buf(),
        boot,
        release,
        arch,
        modules_dir: modules.as_ref().map(|m| m.dir.clone()),
        guest_modules: modules.and_then(|m| m.lib_modules),
        config,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_kernel_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notes.txt");
        std::fs::write(&p, "hello").unwrap();
        let err = from_file(&p, &Places::default()).unwrap_err();
        assert!(format!("{err:#}").contains("is not a Linux kernel image"), "{err:#}");
    }

    #[test]
    fn the_head_of_a_kernel_file_is_its_first_bytes_or_all_of_a_short_one() {
        let dir = tempfile::tempdir().unwrap();
        let (big, small) = (dir.path().join("big"), dir.path().join("small"));
        let bytes: Vec<u8> = (0..HEAD as usize + 4096).map(|i| (i % 251) as u8).collect();
        std::fs::write(&big, &bytes).unwrap();
        std::fs::write(&small, &bytes[..100]).unwrap();
        assert_eq!(read_head(&big).unwrap(), bytes[..HEAD as usize]);
        assert_eq!(read_head(&small).unwrap(), bytes[..100]);
        let err = read_head(&dir.path().join("gone")).unwrap_err();
        assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
    }

    #[test]
    fn a_bzimage_head_holds_its_release() {
        let image =
            image::tests::fake_bzimage(&[7u8; 1 << 20], "6.1.0-56-amd64 (debian-kernel@lists.debian.org)");
        let head = &image[..HEAD as usize];
        assert_eq!(image::kind(head), Some(Kind::BzImage));
        assert_eq!(image::release(Kind::BzImage, head).as_deref(), Some("6.1.0-56-amd64"));
    }
}
