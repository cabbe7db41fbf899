//! The root a guest of another architecture than the host's gets without
//! `--root`: Debian's `busybox-static` for it, fetched once (with a notice)
//! into kdf's cache as a package file and unpacked, never installed, with an
//! applet link for each of busybox's commands in `/bin`, the mount points
//! kdf-init uses, and a user database. `kdf root fetch --arch ARCH PKG...`
//! adds Debian packages (with their dependencies) to the same root.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};

use super::fetch;
use crate::arch::Arch;
use crate::cache;
use crate::ui::say;

/// Present once a root is complete: it lists the packages it holds.
const MARKER: &str = ".kdf-root";

/// The directories a root needs: `/bin` for the applets, the mount points
/// kdf-init uses ([`kdf_proto::ROOT_MOUNT_POINTS`]) and `/lib/modules` for
/// the kernel's modules, so the root is used as it is, with no overlay for
/// those alone.
const DIRS: &[&str] = &[
    "bin",
    "sbin",
    "usr/bin",
    "usr/sbin",
    "etc",
    "root",
    "lib/modules",
    "mnt",
    "dev",
    "proc",
    "sys",
    "tmp",
    "run",
    "var/tmp",
];

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// The names of busybox's applets, read from its binary: its `applet_names`
/// table, NUL-separated and sorted, starts with `[` and `[[`. (The binary is
/// another architecture's, so kdf cannot ask it with `--list`.)
pub fn applets(busybox: &[u8]) -> Vec<String> {
    const START: &[u8] = b"\0[\0[[\0";
    let Some(at) = busybox.windows(START.len()).position(|w| w == START) else { return Vec::new() };
    let table = &busybox[at + 1..];
    let end = table.windows(2).position(|w| w == b"\0\0").unwrap_or(table.len());
    table[..end]
        .split(|&b| b == 0)
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .filter(|n| !n.is_empty() && !n.contains('/') && n != "busybox")
        .collect()
}

/// The cache directory of `arch`'s default root.
fn location(arch: Arch) -> Result<PathBuf> {
    Ok(cache::subdir("roots")?.join(arch.name()))
}

/// The default root for `arch`, built first if this is its first use.
pub fn dir(arch: Arch) -> Result<PathBuf> {
    let dir = location(arch)?;
    if dir.join(MARKER).is_file() {
        return Ok(dir);
    }
    let _lock = lock(arch)?;
    if !dir.join(MARKER).is_file() {
        say(&format!(
            "{arch} guests need an {arch} root: fetching Debian's busybox-static for {arch} into {} (once; \
             or pass --root DIR)",
            dir.display()
        ));
        build(arch, &dir)?;
    }
    Ok(dir)
}

/// Adds Debian packages (and their dependencies) to `arch`'s default root.
pub fn add(arch: Arch, packages: &[String]) -> Result<PathBuf> {
    let dir = self::dir(arch)?;
    if packages.is_empty() {
        return Ok(dir);
    }
    let _lock = lock(arch)?;
    let files = fetch::unpack(arch, packages, &dir)?;
    let mut marker = std::fs::read_to_string(dir.join(MARKER)).unwrap_or_default();
    for f in files {
        marker.push_str(&f);
        marker.push('\n');
    }
    cache::write_atomic(&dir.join(MARKER), marker.as_bytes())?;
    Ok(dir)
}

/// One kdf at a time builds or changes a root.
fn lock(arch: Arch) -> Result<Flock<File>> {
    let path = cache::subdir("roots")?.join(format!(".{}.lock", arch.name()));
    let file = File::create(&path).with_context(|| format!("failed to create {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| e).context("failed to lock the root")
}

/// Builds the busybox root in a scratch directory and renames it into place.
fn build(arch: Arch, dir: &Path) -> Result<()> {
    let parent = dir.parent().context("the root has no parent directory")?;
    let work = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(parent)
        .context("failed to create a scratch root")?;
    let files = fetch::unpack(arch, &["busybox-static".to_string()], work.path())?;
    layout(work.path())?;
    cache::write_atomic(&work.path().join(MARKER), files.join("\n").as_bytes())?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(work.path(), dir)
        .with_context(|| format!("failed to move the root into {}", dir.display()))?;
    // The rename took the directory; nothing is left for the guard to remove.
    let _ = work.keep();
    Ok(())
}

/// The directories, applet links and user database around an unpacked busybox.
pub fn layout(root: &Path) -> Result<()> {
    for d in DIRS {
        std::fs::create_dir_all(root.join(d))
            .with_context(|| format!("failed to create /{d} in the root"))?;
    }
    let busybox = root.join("bin/busybox");
    let bytes = std::fs::read(&busybox).with_context(|| format!("failed to read {}", busybox.display()))?;
    let names = applets(&bytes);
    anyhow::ensure!(names.iter().any(|n| n == "sh"), "{} lists no applets (no sh)", busybox.display());
    for name in names {
        let link = root.join("bin").join(&name);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink("busybox", &link)
                .with_context(|| format!("failed to link {}", link.display()))?;
        }
    }
    for (file, text) in [("etc/passwd", PASSWD), ("etc/group", GROUP)] {
        if !root.join(file).exists() {
            cache::write_atomic(&root.join(file), text.as_bytes())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applets_are_read_from_the_binarys_name_table() {
        let mut bin = b"\x7fELF junk \0 [\0not this\0".to_vec();
        bin.extend_from_slice(b"\0[\0[[\0ash\0cat\0sh\0busybox\0zcat\0\0more junk");
        assert_eq!(applets(&bin), ["[", "[[", "ash", "cat", "sh", "zcat"]);
        assert!(applets(b"no table here").is_empty());
    }

    #[test]
    fn the_layout_links_applets_and_has_what_kdf_init_mounts_on() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("bin")).unwrap();
        std::fs::write(t.path().join("bin/busybox"), b"\0[\0[[\0cat\0sh\0\0").unwrap();
        layout(t.path()).unwrap();
        assert_eq!(std::fs::read_link(t.path().join("bin/sh")).unwrap(), PathBuf::from("busybox"));
        for p in kdf_proto::ROOT_MOUNT_POINTS {
            assert!(t.path().join(&p[1..]).is_dir(), "{p}");
        }
        let passwd = std::fs::read_to_string(t.path().join("etc/passwd")).unwrap();
        assert!(passwd.starts_with("root:x:0:0:root:/root:/bin/sh\n"));
        std::fs::write(t.path().join("bin/busybox"), b"no applets").unwrap();
        std::fs::remove_file(t.path().join("bin/sh")).unwrap();
        assert!(layout(t.path()).is_err());
    }
}
