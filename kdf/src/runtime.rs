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
        // Only a lock on the file still at that path: one opened before its
        // run ended and removed it may be taken after a new run took the name.
        if let Some(_held) = try_lock(&lock_path, false).filter(|l| still_linked(&lock_path, l)) {
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

/// Whether `path` is still the file `lock` was taken on.
fn still_linked(path: &Path, lock: &File) -> bool {
    match (std::fs::metadata(path), lock.metadata()) {
        (Ok(at_path), Ok(locked)) => (at_path.dev(), at_path.ino()) == (locked.dev(), locked.ino()),
        _ => false,
    }
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
        // A cleaner can also lock the file between its creation and our lock,
        // take it for a dead run's and remove it: our lock then guards a file
        // nobody finds, and `kdf attach` or `kdf ps` would miss this run.
        if !still_linked(&lock_path, &lock) {
            continue;
        }
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
    fn a_lock_on_a_file_a_cleaner_removed_or_replaced_guards_nothing() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("run-3-0.lock");
        let lock = try_lock(&path, true).unwrap();
        assert!(still_linked(&path, &lock));
        std::fs::remove_file(&path).unwrap();
        assert!(!still_linked(&path, &lock), "removed");
        std::fs::write(&path, "").unwrap();
        assert!(!still_linked(&path, &lock), "another file by that name");
    }

    #[test]
    fn runs_starting_beside_cleaners_always_hold_a_lock_that_is_found() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let base = tempfile::tempdir().unwrap();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    while !done.load(Ordering::Relaxed) {
                        clean_stale(base.path());
                    }
                });
            }
            let creators: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..300)
                            .filter(|_| match create_in(base.path()) {
                                Ok(run) => !(run.lock_path.exists() && run.path.is_dir()),
                                Err(_) => true,
                            })
                            .count()
                    })
                })
                .collect();
            let results: Vec<_> = creators.into_iter().map(|c| c.join()).collect();
            // The cleaners stop before anything is asserted, or a failing
            // creator would leave them spinning and the test hanging.
            done.store(true, Ordering::Relaxed);
            let lost: usize = results.into_iter().map(|r| r.expect("a creator panicked")).sum();
            assert_eq!(lost, 0, "runs whose lock file or directory a cleaner removed");
        });
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
