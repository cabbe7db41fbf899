//! A subset run as an unprivileged user (CI runs as root: scripts/test.sh
//! creates the user `kdf-test` and names it in KDF_TEST_USER): virtiofsd runs
//! as that user, files the guest writes in the cwd belong to it, the private
//! runtime directory works without XDG_RUNTIME_DIR, and what the user cannot
//! read is named.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Everything needed to run kdf as the test user.
struct AsUser {
    base: tempfile::TempDir,
    /// `runuser -u USER --` when the tests run as root; empty otherwise.
    prefix: Vec<String>,
    user: Option<String>,
    uid: u32,
}

fn is_root() -> bool {
    // SAFETY: getuid cannot fail and touches no memory.
    unsafe { libc::getuid() == 0 }
}

/// Copies a binary where any user can run it (root's home is private).
fn public_copy(src: &Path, dir: &Path) -> PathBuf {
    let dst = dir.join(src.file_name().unwrap());
    std::fs::copy(src, &dst).unwrap();
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
    dst
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

impl AsUser {
    fn new() -> AsUser {
        let base = tempfile::tempdir().unwrap();
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = base.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        public_copy(&kdf_bin(), &bin);
        public_copy(&kdf_init(), &bin);
        let virtiofsd = which("virtiofsd").expect("virtiofsd should be installed (scripts/setup.sh)");
        public_copy(&virtiofsd, &bin);
        let (prefix, user, uid) = if is_root() {
            let user = std::env::var("KDF_TEST_USER").expect(
                "running as root: set KDF_TEST_USER to an unprivileged user (scripts/test.sh creates kdf-test)",
            );
            let out = Command::new("id").args(["-u", &user]).output().unwrap();
            let uid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            (vec!["runuser".into(), "-u".into(), user.clone(), "--".into()], Some(user), uid)
        } else {
            // SAFETY: getuid cannot fail.
            (Vec::new(), None, unsafe { libc::getuid() })
        };
        let me = AsUser { base, prefix, user, uid };
        me.dir("home");
        // The runtime directory falls back to $TMPDIR/kdf-<uid>: keep it here.
        me.dir("tmp");
        me
    }

    /// A directory under the base owned by the test user.
    fn dir(&self, name: &str) -> PathBuf {
        let d = self.base.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        if let Some(user) = &self.user {
            Command::new("chown").arg(user).arg(&d).status().unwrap();
        }
        d
    }

    fn kdf(&self, cwd: &Path, args: &[&str]) -> Out {
        let (bin, home) = (self.base.path().join("bin"), self.base.path().join("home"));
        let mut argv = self.prefix.clone();
        argv.extend(["env".into(), "-u".into(), "XDG_RUNTIME_DIR".into()]);
        argv.push(format!("HOME={}", home.display()));
        argv.push(format!("TMPDIR={}", self.base.path().join("tmp").display()));
        argv.push(format!("XDG_CACHE_HOME={}", home.join("cache").display()));
        argv.push(format!("KDF_INIT={}", bin.join("kdf-init").display()));
        argv.push(format!("PATH={}:/usr/bin:/bin", bin.display()));
        argv.push(bin.join("kdf").display().to_string());
        argv.extend(args.iter().map(|s| s.to_string()));
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).current_dir(cwd);
        run_with(cmd, None)
    }
}

#[test]
fn an_unprivileged_user_runs_and_owns_what_the_guest_writes() {
    let u = AsUser::new();
    let work = u.dir("work");
    let out = u.kdf(&work, &["run", "--", "sh", "-c", "id -u; echo mine > owned.txt"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    // Root in the guest by default; the file is the user's on the host.
    assert_eq!(out.stdout_str(), "0\n");
    let meta = std::fs::metadata(work.join("owned.txt")).unwrap();
    assert_eq!(meta.uid(), u.uid);
    assert_eq!(std::fs::read_to_string(work.join("owned.txt")).unwrap(), "mine\n");
    // --user runs the command as the invoking user.
    let out = u.kdf(&work, &["run", "--user", "--", "id", "-u"]);
    assert_eq!(out.stdout_str().trim(), u.uid.to_string(), "{}", out.stderr);
}

#[test]
fn a_kernel_the_user_cannot_read_is_named_with_the_ubuntu_hint() {
    let u = AsUser::new();
    let work = u.dir("work");
    let image = std::fs::read_dir("/boot")
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
        .expect("an installed kernel");
    let private = u.base.path().join("vmlinuz-private");
    std::fs::copy(image.path(), &private).unwrap();
    // Root-owned 0600 as Ubuntu installs them (0000 when not root: unreadable to us too).
    let mode = if is_root() { 0o600 } else { 0o000 };
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(mode)).unwrap();
    let out = u.kdf(&work, &["run", "--kernel", private.to_str().unwrap(), "--", "true"]);
    assert_eq!(out.status, 125, "{}", out.stderr);
    assert!(out.stderr.contains("permission denied"), "{}", out.stderr);
    assert!(out.stderr.contains("kdf: hint: Ubuntu installs /boot/vmlinuz-*"), "{}", out.stderr);
}

#[test]
fn an_unreadable_working_directory_is_refused() {
    let u = AsUser::new();
    let closed = u.dir("closed");
    let inner = closed.join("inner");
    std::fs::create_dir(&inner).unwrap();
    if let Some(user) = &u.user {
        Command::new("chown").arg(user).arg(&inner).status().unwrap();
    }
    // The user can enter `inner` through `closed` (x) but not list it (no r).
    std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o311)).unwrap();
    let out = u.kdf(&inner, &["run", "--", "true"]);
    std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(out.status, 125, "{}", out.stderr);
    assert!(out.stderr.contains("is not readable"), "{}", out.stderr);
}
