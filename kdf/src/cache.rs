//! kdf's cache (`$XDG_CACHE_HOME/kdf`, else `~/.cache/kdf`): files named by a
//! hash of their inputs and written atomically, so parallel cold runs never see
//! a half-written file.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// The cache root, created on first use.
pub fn root() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .context("cannot find a cache directory: neither XDG_CACHE_HOME nor HOME is set")?;
            PathBuf::from(home).join(".cache")
        }
    };
    Ok(base.join("kdf"))
}

/// `<root>/<name>`, created if needed.
pub fn subdir(name: &str) -> Result<PathBuf> {
    let dir = root()?.join(name);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create the cache directory {}", dir.display()))?;
    Ok(dir)
}

/// The format of what kdf caches (initramfs layout, extracted kernels,
/// verdicts): bump it when one changes, so a new kdf never reuses an old file.
pub const CACHE_FORMAT: u32 = 2;

/// A hex SHA-256 of [`CACHE_FORMAT`] and the parts, each length-prefixed so
/// boundaries count: every cache key is one.
pub fn digest<I, B>(parts: I) -> String
where
    I: IntoIterator<Item = B>,
    B: AsRef<[u8]>,
{
    let mut h = Sha256::new();
    h.update(CACHE_FORMAT.to_le_bytes());
    for p in parts {
        let p = p.as_ref();
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// `path:size:mtime.nsec:ctime.nsec`: what a cache key holds for an input
/// file that is too big to hash on every run (a kernel image, modules,
/// kdf-init; hashing Debian's 8 MB vmlinuz took ~12 ms of every run). A
/// rebuilt file gets a new mtime even when its size is unchanged, and a file
/// copied over it with its old mtime kept (`cp -p`) a new ctime.
pub fn fingerprint(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("failed to stat {}", path.display()))?;
    Ok(format!(
        "{}:{}:{}.{:09}:{}.{:09}",
        path.display(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    ))
}

/// Writes `bytes` to `path` through a temporary file in the same directory and
/// a rename: readers see the old file, or the whole new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("failed to create a temporary file in {}", dir.display()))?;
    // Readable like any file the user writes (tempfile creates 0600).
    use std::os::unix::fs::PermissionsExt;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)))
        .and_then(|()| tmp.as_file().sync_data())
        .with_context(|| format!("failed to write {} (is the disk full?)", path.display()))?;
    tmp.persist(path).with_context(|| format!("failed to rename into {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_depends_on_boundaries_and_content() {
        assert_eq!(digest(["ab", "c"]), digest(["ab", "c"]));
        assert_ne!(digest(["ab", "c"]), digest(["a", "bc"]));
        assert_eq!(digest(["x"]).len(), 32);
    }

    #[test]
    fn fingerprint_follows_size_mtime_and_ctime_and_names_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.ko");
        std::fs::write(&p, "one").unwrap();
        let touch = |secs, nanos| {
            let when = std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos);
            std::fs::File::options().write(true).open(&p).unwrap().set_modified(when).unwrap();
        };
        touch(1_700_000_000, 5);
        let first = fingerprint(&p).unwrap();
        assert!(first.starts_with(&format!("{}:3:1700000000.000000005:", p.display())), "{first}");
        touch(1_700_000_001, 5);
        assert_ne!(fingerprint(&p).unwrap(), first, "same size, new mtime");
        // Other bytes of the same size with the old mtime put back (`cp -p`):
        // the change time tells them apart (coarse: a tick is a few ms).
        touch(1_700_000_000, 5);
        let before = fingerprint(&p).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::fs::write(&p, "two").unwrap();
        touch(1_700_000_000, 5);
        assert_ne!(fingerprint(&p).unwrap(), before, "same size and mtime, new ctime");
        let err = fingerprint(&dir.path().join("gone.ko")).unwrap_err();
        assert!(format!("{err:#}").starts_with("failed to stat "), "{err:#}");
    }

    #[test]
    fn atomic_write_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files left behind");
    }
}
