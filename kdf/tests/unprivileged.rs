//! A subset run as an unprivileged user (CI runs as root: scripts/test.sh
//! creates the user `kdf-test` and names it in KDF_TEST_USER): virtiofsd runs
//! as that user, files the guest writes in the cwd belong to it, and the
//! private runtime directory works without XDG_RUNTIME_DIR.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The user to run as, and a command prefix that switches to it.
fn as_user() -> Option<(String, Vec<String>)> {
    // SAFETY: getuid cannot fail and touches no memory.
    if unsafe { libc::getuid() } != 0 {
        return None; // Already unprivileged: run directly.
    }
    let user = std::env::var("KDF_TEST_USER").expect(
        "running as root: set KDF_TEST_USER to an unprivileged user (scripts/test.sh creates kdf-test)",
    );
    Some((user.clone(), vec!["runuser".into(), "-u".into(), user, "--".into()]))
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Copies a binary where any user can run it (root's home is private).
fn public_copy(src: &Path, dir: &Path) -> PathBuf {
    let dst = dir.join(src.file_name().unwrap());
    std::fs::copy(src, &dst).unwrap();
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
    dst
}

#[test]
fn an_unprivileged_user_runs_and_owns_what_the_guest_writes() {
    let base = tempfile::tempdir().unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = base.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let kdf = public_copy(&kdf_bin(), &bin);
    let init = public_copy(&kdf_init(), &bin);
    let virtiofsd = which("virtiofsd").map(|v| public_copy(&v, &bin));
    let work = base.path().join("work");
    let home = base.path().join("home");
    std::fs::create_dir(&work).unwrap();
    std::fs::create_dir(&home).unwrap();
    let prefix = as_user();
    let uid = match &prefix {
        Some((user, _)) => {
            for d in [&work, &home] {
                Command::new("chown").arg(user).arg(d).status().unwrap();
            }
            uid_of(user)
        }
        // SAFETY: getuid cannot fail.
        None => unsafe { libc::getuid() },
    };
    let mut argv: Vec<String> = prefix.map(|p| p.1).unwrap_or_default();
    argv.extend(["env".into(), "-u".into(), "XDG_RUNTIME_DIR".into()]);
    argv.push(format!("HOME={}", home.display()));
    argv.push(format!("XDG_CACHE_HOME={}", home.join("cache").display()));
    argv.push(format!("KDF_INIT={}", init.display()));
    argv.push(format!("PATH={}:/usr/bin:/bin", bin.display()));
    argv.push(kdf.display().to_string());
    argv.extend(["run", "--", "sh", "-c", "id -u; echo mine > owned.txt"].map(String::from));
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).current_dir(&work);
    let out = run_with(cmd, None);
    assert_eq!(out.status, 0, "{}", out.stderr);
    // Root in the guest by default; the file is the user's on the host.
    assert_eq!(out.stdout_str(), "0\n");
    let meta = std::fs::metadata(work.join("owned.txt")).unwrap();
    assert_eq!(meta.uid(), uid);
    assert_eq!(std::fs::read_to_string(work.join("owned.txt")).unwrap(), "mine\n");
    assert!(virtiofsd.is_some(), "virtiofsd should be installed for this test (scripts/setup.sh)");
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}
