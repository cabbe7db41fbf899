//! A private runtime directory per run (virtiofsd sockets live there):
//! `$XDG_RUNTIME_DIR/kdf/<run>` or `/tmp/kdf-<uid>/<run>`, mode 0700.
//!
//! Each run holds an exclusive `flock` on `<run>.lock` next to its directory.
//! A run killed with SIGKILL cannot clean up, so every run first removes the
//! directories whose lock nobody holds.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};

#[derive(Debug)]
pub struct RuntimeDir {
    path: PathBuf,
    lock_path: PathBuf,
    _lock: Flock<File>,
}

impl RuntimeDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// The per-user base directory, created 0700 and checked to be ours.
pub fn base() -> Result<PathBuf> {
    let uid = nix::unistd::getuid().as_raw();
    let base = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() && dir.is_dir() => dir.join("kdf"),
        _ => std::env::temp_dir().join(format!("kdf-{uid}")),
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&base) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("failed to create {}", base.display())),
    }
    let meta =
        std::fs::symlink_metadata(&base).with_context(|| format!("failed to stat {}", base.display()))?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        bail!(
            "{} is not a private directory of uid {uid} (owner {}, mode {:o}): remove it",
            base.display(),
            meta.uid(),
            meta.mode() & 0o7777
        );
    }
    Ok(base)
}

/// Tries to take a lock without waiting.
fn try_lock(path: &Path, create: bool) -> Option<Flock<File>> {
    let file = OpenOptions::new().read(true).write(true).create_new(create).mode(0o600).open(path).ok()?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).ok()
}

/// Removes what runs that no longer exist left behind.
pub fn clean_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let lock_path = entry.path();
        if lock_path.extension().is_none_or(|e| e != "lock") {
            continue;
        }
        if let Some(_held) = try_lock(&lock_path, false) {
            let _ = std::fs::remove_dir_all(lock_path.with_extension(""));
            let _ = std::fs::remove_file(&lock_path);
        }
    }
}

/// The directories of runs that are still running (their lock is held).
pub fn live_dirs(base: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(base) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|lock_path| lock_path.extension().is_some_and(|e| e == "lock"))
        .filter(|lock_path| try_lock(lock_path, false).is_none() && lock_path.with_extension("").is_dir())
        .map(|lock_path| lock_path.with_extension(""))
        .collect();
    dirs.sort();
    dirs
}

/// A fresh, locked, private directory for this run.
pub fn create() -> Result<RuntimeDir> {
    create_in(&base()?)
}

/// A fresh, locked, private directory for this run under `base`.
pub fn create_in(base: &Path) -> Result<RuntimeDir> {
    clean_stale(base);
    for attempt in 0..100 {
        let name = format!("run-{}-{}", std::process::id(), attempt);
        let lock_path = base.join(format!("{name}.lock"));
        // Lock first, then create the directory: a cleaner that wins the race
        // for a new lock file makes us pick another name, never lose a dir.
        let Some(lock) = try_lock(&lock_path, true) else { continue };
        let path = base.join(&name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("failed to create {}", path.display()))?;
        return Ok(RuntimeDir { path, lock_path, _lock: lock });
    }
    bail!("failed to create a runtime directory in {}", base.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_dirs_are_removed_and_live_ones_kept() {
        let base = tempfile::tempdir().unwrap();
        let b = base.path();
        std::fs::create_dir(b.join("run-1-0")).unwrap();
        std::fs::write(b.join("run-1-0.lock"), "").unwrap();
        let live = try_lock(&b.join("run-2-0.lock"), true).unwrap();
        std::fs::create_dir(b.join("run-2-0")).unwrap();
        clean_stale(b);
        assert!(!b.join("run-1-0").exists() && !b.join("run-1-0.lock").exists());
        assert!(b.join("run-2-0").exists());
        drop(live);
    }

    #[test]
    fn a_run_dir_is_private_and_removed_on_drop() {
        let dir = create().unwrap();
        let path = dir.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        drop(dir);
        assert!(!path.exists());
    }
}
