//! arm64 guests (`kdf run --arch arm64`) under TCG: Debian's arm64 kernel,
//! fetched as a package file (`scripts/fetch-kernel-package.sh --arch arm64`,
//! cached), booted with kdf's default arm64 root (busybox-static, fetched
//! once by `kdf root fetch`) and the workspace's aarch64 kdf-init; and the
//! wrong-architecture kernel, init, root and module each refused before boot.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use common::*;

/// Debian's arm64 kernel package, unpacked and depmod'ed (once per cache).
fn debian_arm64() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        common::arm64::ready();
        let fetch = std::process::Command::new(workspace().join("scripts/fetch-kernel-package.sh"))
            .args(["--arch", "arm64"])
            .arg(cache_dir().join("kernel-packages"))
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(fetch.status.success(), "scripts/fetch-kernel-package.sh --arch arm64 failed");
        PathBuf::from(String::from_utf8(fetch.stdout).unwrap().trim())
    })
}

fn release(dir: &Path) -> String {
    dir.file_name().unwrap().to_str().unwrap().to_string()
}

fn image() -> PathBuf {
    let dir = debian_arm64();
    dir.join(format!("boot/vmlinuz-{}", release(dir)))
}

fn arm64_run(cwd: &Path, extra: &[&str], command: &[&str]) -> Out {
    let image = image();
    let mut args = vec!["--arch", "arm64", "--kernel", image.to_str().unwrap()];
    args.extend(extra);
    args.push("--");
    args.extend(command);
    run_in(cwd, &args)
}

#[test]
fn debians_arm64_kernel_runs_a_command_with_exact_output_and_status() {
    let cwd = tempfile::tempdir().unwrap();
    let out = arm64_run(
        cwd.path(),
        &[],
        &["sh", "-c", "uname -m; printf 'to stderr\\n' >&2; echo written > here.txt; exit 7"],
    );
    assert_eq!(out.stdout_str(), "aarch64\n", "stderr: {}", out.stderr);
    assert_eq!(out.command_stderr(), "to stderr\n");
    assert_eq!(out.status, 7);
    let written = std::fs::read_to_string(cwd.path().join("here.txt")).unwrap();
    assert_eq!(written, "written\n", "the guest's write to the cwd is on the host");
}

#[test]
fn a_debian_arm64_module_loads_with_module() {
    let dir = debian_arm64();
    let ko = dir.join(format!("lib/modules/{}/kernel/drivers/net/dummy.ko", release(dir)));
    let cwd = tempfile::tempdir().unwrap();
    let module = ko.to_str().unwrap();
    let out = arm64_run(cwd.path(), &["--module", module], &["sh", "-c", "grep -c '^dummy ' /proc/modules"]);
    assert_eq!((out.stdout_str().as_str(), out.status), ("1\n", 0), "stderr: {}", out.stderr);
}

/// A refusal before boot: status 125 or the module status, the message named.
fn refused(out: &Out, what: &str) {
    assert_ne!(out.status, 0, "{what}: {}", out.stderr);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains(what), "expected {what:?} in:\n{}", out.stderr);
    assert!(!out.stderr.contains("Linux version"), "refused before boot:\n{}", out.stderr);
}

#[test]
fn an_x86_64_kernel_is_not_an_arm64_one() {
    let Some(x86) = std::fs::read_dir("/boot")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("vmlinuz-"))
    else {
        panic!("no /boot/vmlinuz-*: the VM tests need the installed kernel");
    };
    let cwd = tempfile::tempdir().unwrap();
    let out = run_in(cwd.path(), &["--arch", "aarch64", "--kernel", x86.to_str().unwrap(), "--", "true"]);
    refused(&out, "is an x86_64 kernel, not an arm64 one");
}

#[test]
fn an_x86_64_init_is_refused_for_an_arm64_guest() {
    let cwd = tempfile::tempdir().unwrap();
    let out = arm64_run(cwd.path(), &["--init", "/bin/true"], &["true"]);
    refused(&out, "is built for x86_64; the arm64 guest's /init must be aarch64");
}

#[test]
fn an_x86_64_root_is_refused_for_an_arm64_guest() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.path().join("bin/sh")).unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let out = arm64_run(cwd.path(), &["--root", root.path().to_str().unwrap()], &["sh", "-c", "true"]);
    refused(&out, "is an ELF for x86_64 and the guest is arm64");
}

#[test]
fn an_x86_64_module_is_refused_for_an_arm64_kernel() {
    let host_modules = Path::new("/lib/modules");
    let ko = std::fs::read_dir(host_modules)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("kernel/drivers/net/dummy.ko"))
        .find(|p| p.is_file())
        .expect("the host kernel's dummy.ko (Debian's linux-image-amd64)");
    let cwd = tempfile::tempdir().unwrap();
    let out = arm64_run(cwd.path(), &["--module", ko.to_str().unwrap()], &["true"]);
    refused(&out, "is a module for x86_64, the kernel is arm64");
}
