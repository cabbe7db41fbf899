//! `kdf run --root DIR` and `--network user`, booting real VMs (the host's
//! newest installed kernel, TCG where KVM cannot boot Linux): a minimal root
//! of its own (a static busybox and an `/etc/os-release`, no /proc, /run or
//! /tmp) read-only and never written, overlaid, refusing commands it cannot
//! run before anything boots; the guest reaching a server on the host and
//! the host one in the guest; a kernel unpacked from its Debian package, not
//! installed, booting with the modules next to it.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const OS_RELEASE: &str = "PRETTY_NAME=\"kdf test root\"\nID=kdftest\n";

/// The applets the tests use, as links to the root's own busybox.
const APPLETS: &[&str] = &["sh", "cat", "echo", "nc", "touch", "mkdir", "test", "ls"];

/// A minimal root: Debian's static busybox (`busybox-static`), its applets
/// linked by absolute paths (which must resolve inside the root), and its own
/// os-release. No /proc, /sys, /dev, /run, /tmp or /etc/passwd.
fn minimal_root() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("kdf-root-").tempdir().unwrap();
    let root = dir.path();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .expect("busybox not found: install busybox-static (scripts/setup.sh does)");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("/bin/busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("etc/os-release"), OS_RELEASE).unwrap();
    dir
}

/// Every entry under `dir` with its type, mode, size, mtime and link target:
/// any write, creation or removal changes it.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let meta = std::fs::symlink_metadata(&d).unwrap();
        out.insert(
            d.strip_prefix(dir).unwrap().to_path_buf(),
            format!(
                "{:o} {} {}.{} {:?}",
                meta.mode(),
                meta.size(),
                meta.mtime(),
                meta.mtime_nsec(),
                std::fs::read_link(&d).ok()
            ),
        );
        if meta.is_dir() {
            todo.extend(std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

#[test]
fn a_read_only_root_runs_its_own_files_and_is_never_written() {
    let root = minimal_root();
    let cwd = tempfile::tempdir().unwrap();
    let before = snapshot(root.path());
    let r = root.path().to_str().unwrap();
    let out = run_in(cwd.path(), &["--root", r, "--", "cat", "/etc/os-release"]);
    assert_eq!(ok(out), OS_RELEASE, "the root's own os-release, not the host's");
    // Writes to the root fail; the working directory is still the host's.
    let script = "touch /new 2>/dev/null && echo root-written; echo from-the-guest > cwd-file; \
                  test -d /proc/self && test -d /tmp && test -d /run && echo mounted; echo HOME=$HOME";
    let out = run_in(cwd.path(), &["--root", r, "--", "sh", "-c", script]);
    assert_eq!(ok(out), "mounted\nHOME=/\n", "read-only, /proc /tmp /run there, no passwd: HOME=/");
    assert_eq!(std::fs::read_to_string(cwd.path().join("cwd-file")).unwrap(), "from-the-guest\n");
    assert_eq!(snapshot(root.path()), before, "ro never writes DIR");
}

#[test]
fn an_overlaid_root_takes_writes_and_keeps_the_directory_unchanged() {
    let root = minimal_root();
    let cwd = tempfile::tempdir().unwrap();
    let before = snapshot(root.path());
    let script = "echo changed > /etc/os-release && mkdir -p /var/lib/x && echo new > /var/lib/x/f && \
                  cat /etc/os-release /var/lib/x/f && echo kept > cwd-file";
    let out = run_in(
        cwd.path(),
        &["--root", root.path().to_str().unwrap(), "--root-mode", "overlay", "--", "sh", "-c", script],
    );
    assert_eq!(ok(out), "changed\nnew\n");
    assert_eq!(std::fs::read_to_string(cwd.path().join("cwd-file")).unwrap(), "kept\n");
    assert_eq!(snapshot(root.path()), before, "overlay writes stay in the guest");
}

/// A QEMU that only records that it was started: a refusal must come first.
fn qemu_marker(dir: &Path) -> (PathBuf, PathBuf) {
    let (qemu, marker) = (dir.join("qemu"), dir.join("qemu-started"));
    std::fs::write(&qemu, format!("#!/bin/sh\ntouch '{}'\nexit 1\n", marker.display())).unwrap();
    std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();
    (qemu, marker)
}

/// A minimal aarch64 ELF executable header (no segments): what a root of
/// another architecture holds.
fn aarch64_elf() -> Vec<u8> {
    let mut elf = vec![0u8; 64];
    elf[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
    elf[16] = 2; // ET_EXEC
    elf[18] = 183; // EM_AARCH64
    elf[20] = 1; // EV_CURRENT
    elf
}

#[test]
fn commands_the_root_cannot_run_are_refused_before_boot() {
    let root = minimal_root();
    let cwd = tempfile::tempdir().unwrap();
    let (qemu, marker) = qemu_marker(cwd.path());
    let bin = root.path().join("bin");
    std::fs::write(bin.join("arm-tool"), aarch64_elf()).unwrap();
    std::fs::set_permissions(bin.join("arm-tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    // A dynamically linked program whose loader the root lacks.
    std::fs::copy(std::env::current_exe().unwrap(), bin.join("dynamic")).unwrap();
    let r = root.path().to_str().unwrap();
    let refused = |cmd: &str| {
        let mut c = kdf(cwd.path());
        c.env("KDF_QEMU", &qemu).args(["run", "--root", r, "--", cmd]);
        run_with(c, None)
    };
    let out = refused("bash");
    assert_eq!(out.status, 127, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("kdf: error: cannot run bash in --root {r}: it is not in the root (PATH=")),
        "{}",
        out.stderr
    );
    let out = refused("arm-tool");
    assert_eq!(out.status, 126, "{}", out.stderr);
    assert!(
        out.stderr.contains("/bin/arm-tool is an ELF for aarch64 and the guest is x86_64"),
        "{}",
        out.stderr
    );
    let out = refused("dynamic");
    assert_eq!(out.status, 127, "{}", out.stderr);
    assert!(out.stderr.contains("/bin/dynamic needs /lib"), "{}", out.stderr);
    assert!(out.stderr.contains("which the root lacks"), "{}", out.stderr);
    assert!(!marker.exists(), "QEMU was started for a refused command");
}

/// A server on the host's loopback that greets each client with `greeting`.
fn greeter(greeting: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut client in listener.incoming().flatten() {
            let _ = client.write_all(greeting.as_bytes());
        }
    });
    port
}

#[test]
fn the_guest_reaches_a_server_on_the_hosts_loopback() {
    let port = greeter("hello from the host\n");
    let cwd = tempfile::tempdir().unwrap();
    // The host's root: bash's /dev/tcp; QEMU maps its host address 10.0.2.2 to 127.0.0.1.
    let script = format!("exec 3<>/dev/tcp/10.0.2.2/{port}; cat <&3; cat /etc/resolv.conf");
    let out = run_in(cwd.path(), &["--network", "user", "--", "bash", "-c", &script]);
    let text = ok(out);
    assert!(text.starts_with("hello from the host\n"), "{text}");
    assert!(text.ends_with("nameserver 10.0.2.3\n"), "the guest's own resolver file: {text}");
}

#[test]
fn without_a_network_the_guest_has_only_the_loopback() {
    let root = minimal_root();
    let cwd = tempfile::tempdir().unwrap();
    let out = run_in(cwd.path(), &["--root", root.path().to_str().unwrap(), "--", "ls", "/sys/class/net"]);
    assert_eq!(ok(out), "lo\n");
}

#[test]
fn forward_lets_the_host_reach_a_server_in_the_guest() {
    let root = minimal_root();
    let cwd = tempfile::tempdir().unwrap();
    let before = snapshot(root.path());
    let host_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = kdf(cwd.path());
    cmd.args(["run", "--root", root.path().to_str().unwrap(), "--network", "user"])
        .args(["--forward", &format!("{host_port}:7777"), "--"])
        .args(["sh", "-c", "echo hello from the guest | nc -l -p 7777"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    // QEMU accepts on the host port from the start and drops a connection
    // while nothing listens in the guest yet: retry until the greeting comes.
    let start = Instant::now();
    let greeting = loop {
        let mut got = String::new();
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", host_port)) {
            let _ = s.read_to_string(&mut got);
        }
        if !got.is_empty() {
            break got;
        }
        assert!(start.elapsed() < LIMIT, "no greeting from the guest through --forward");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(greeting, "hello from the guest\n");
    let out = wait(child);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(snapshot(root.path()), before, "the guest's resolver file is not written into DIR");
}

/// The release kdf boots by default: the host's newest installed kernel.
fn installed_release() -> String {
    let mut releases: Vec<String> = std::fs::read_dir("/boot")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("vmlinuz-").map(String::from))
        .collect();
    releases.sort_by_key(|r| version_key(r));
    releases.pop().expect("no /boot/vmlinuz-*: the VM tests boot the installed kernel")
}

fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect()
}

#[test]
fn a_kernel_unpacked_from_its_package_boots_with_the_modules_next_to_it() {
    let release = installed_release();
    let packages = cache_dir().join("kernel-packages");
    let fetch = std::process::Command::new(workspace().join("scripts/fetch-kernel-package.sh"))
        .args([release.as_str(), packages.to_str().unwrap()])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(fetch.status.success(), "scripts/fetch-kernel-package.sh {release} failed");
    let unpacked = PathBuf::from(String::from_utf8(fetch.stdout).unwrap().trim());
    let image = unpacked.join(format!("boot/vmlinuz-{release}"));
    // Nothing installed on the host counts: empty /boot and /lib/modules.
    let empty = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let script = format!("uname -r; test -f /lib/modules/{release}/modules.dep && echo modules; grep -c '^virtiofs ' /proc/modules");
    let mut cmd = kdf(cwd.path());
    cmd.env("KDF_BOOT_DIR", empty.path()).env("KDF_MODULES_DIR", empty.path());
    cmd.args(["run", "--kernel", image.to_str().unwrap(), "--", "sh", "-c", &script]);
    let out = run_with(cmd, None);
    assert_eq!(ok(out), format!("{release}\nmodules\n1\n"), "virtio modules loaded from the package's");
    let mut dry = kdf(cwd.path());
    dry.env("KDF_BOOT_DIR", empty.path()).env("KDF_MODULES_DIR", empty.path());
    dry.args(["run", "--dry-run", "--kernel", image.to_str().unwrap(), "--", "true"]);
    let lines = ok(run_with(dry, None));
    let shared = format!("--shared-dir {}", unpacked.join("lib/modules").canonicalize().unwrap().display());
    assert!(lines.contains(&shared), "the package's lib/modules is the guest's /lib/modules:\n{lines}");
}
