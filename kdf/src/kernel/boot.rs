//! Choosing the file QEMU boots. Under TCG a bzImage spends most of its boot
//! decompressing itself; a kernel with a PVH entry (`CONFIG_PVH`) boots its
//! `vmlinux` directly, so kdf extracts that once and caches it by the image's
//! fingerprint (path, size, mtime, ctime: hashing it cost every run ~12 ms).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::image::{self, Kind};
use crate::cache;
use crate::errors::hinted;

/// The file to pass to `-kernel`: the extracted PVH `vmlinux` if there is one,
/// else the image itself. `bytes` is the file, or a bzImage's head only: the
/// whole file is read when a `vmlinux` must be extracted.
pub fn bootable(path: &Path, bytes: &[u8], kind: Kind) -> Result<PathBuf> {
    match kind {
        Kind::Elf if image::arch(kind, bytes) == Some(crate::arch::Arch::Arm64) => Err(hinted(
            format!("{} is an arm64 vmlinux, which QEMU cannot boot", path.display()),
            "boot arch/arm64/boot/Image (or Image.gz) of the same build",
        )),
        Kind::Elf if image::has_pvh_note(bytes) => Ok(path.to_path_buf()),
        Kind::Elf => Err(hinted(
            format!("{} is an ELF kernel without a PVH entry, which QEMU cannot boot", path.display()),
            "boot its bzImage instead, or build the kernel with CONFIG_PVH=y",
        )),
        Kind::BzImage => extracted(path),
        // QEMU's arm64 loader takes the Image, gzip'd or not, as it is; there
        // is no PVH-like shortcut, and a TCG decompression of Image.gz costs
        // less than a bzImage's (no xz).
        Kind::Arm64Image { .. } => Ok(path.to_path_buf()),
    }
}

fn extracted(path: &Path) -> Result<PathBuf> {
    let dir = cache::subdir("vmlinux")?;
    let key = cache::digest([cache::fingerprint(path)?]);
    let vmlinux = dir.join(&key);
    let no_pvh = dir.join(format!("{key}.no-pvh"));
    if vmlinux.exists() {
        return Ok(vmlinux);
    }
    if no_pvh.exists() {
        return Ok(path.to_path_buf());
    }
    // Its head was read a moment ago: the reader's errors are named there.
    let bytes =
        std::fs::read(path).with_context(|| format!("failed to read the kernel {}", path.display()))?;
    let elf = image::payload(&bytes).and_then(|(data, comp)| image::decompress(data, comp).ok());
    match elf {
        Some(elf) if image::has_pvh_note(&elf) => {
            cache::write_atomic(&vmlinux, &elf)?;
            Ok(vmlinux)
        }
        // No PVH entry, or a payload we cannot unpack: remember, boot the image.
        _ => {
            cache::write_atomic(&no_pvh, b"")?;
            Ok(path.to_path_buf())
        }
    }
}
