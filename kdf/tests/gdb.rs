//! `kdf run -d` and `kdf gdb` on real VMs (TCG) with gdb in batch mode:
//! a breakpoint in a C module's `__init` and in the Rust module's `Drop`,
//! the kernel's lx- commands, two debugged VMs at once, and the errors a
//! user meets (no debug info, nothing listening, no run, no gdb).

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::debug::*;
use common::modules::{build, ko, test_kernel};
use common::*;

fn hello() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build("gdb-helloworld", &workspace().join("modules/helloworld")))
}

fn rust_hello() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build("gdb-rust", &workspace().join("modules/rust")))
}

/// `kdf run --kernel <test kernel> -d --debug-wait ARGS`.
fn waiting(cwd: &Path, args: &[&str]) -> Running {
    let kernel = test_kernel();
    let mut all = vec!["--kernel", kernel.to_str().unwrap(), "-d", "--debug-wait"];
    all.extend_from_slice(args);
    Running::start(cwd, &all)
}

#[test]
fn gdb_stops_in_a_modules_init_at_its_source_line_and_the_run_then_ends_with_0() {
    let dir = tempfile::tempdir().unwrap();
    let run = waiting(dir.path(), &["--module", &ko(hello(), "helloworld"), "--", "true"]);
    // No port, no kernel: both from the run's record.
    stops_in_helloworld_init(dir.path(), run, hello(), "lx-symbols-runtime");
}

#[test]
fn gdb_stops_in_the_rust_modules_drop_on_rmmod() {
    let dir = tempfile::tempdir().unwrap();
    let run =
        waiting(dir.path(), &["--module", &ko(rust_hello(), "rust_hello"), "--", "rmmod", "rust_hello"]);
    let line = line_of(&rust_hello().join("rust_hello.rs"), "my numbers are");
    let out = gdb_in(
        dir.path(),
        &[
            "-batch",
            "-ex",
            &format!("break rust_hello.rs:{line}"),
            "-ex",
            "continue",
            "-ex",
            "bt 1",
            "-ex",
            "continue",
        ],
    );
    let run = run.finish();
    let text = out.stdout_str();
    let hit = text
        .lines()
        .find(|l| l.starts_with("#0 "))
        .unwrap_or_else(|| panic!("no stop:\n{text}\n{}", out.stderr));
    assert!(hit.contains("rust_hello::") && hit.contains("::drop ("), "{hit}");
    assert!(hit.ends_with(&format!("rust_hello.rs:{line}")), "{hit}");
    assert_eq!(run.status, 0, "{}", run.stderr);
}

#[test]
fn two_debugged_vms_get_their_own_ports_and_kdf_gdb_finds_each_from_its_directory() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let run_a = waiting(a.path(), &["--", "true"]);
    let mut run_b = waiting(b.path(), &["--", "true"]);
    let attach = ["-batch", "-ex", "info connections", "-ex", "detach"];
    let gdb_a = gdb_in(a.path(), &attach);
    let run_a = run_a.finish();
    assert_eq!(run_a.status, 0, "{}", run_a.stderr);
    let port_a = announced_port(&run_a.stderr);
    assert!(gdb_a.stdout_str().contains(&format!("127.0.0.1:{port_a}")), "{}", gdb_a.stdout_str());
    // Detaching from A let A run; B's CPU still waits for its own debugger.
    assert!(run_b.still_running(), "B ran on without a debugger");
    let gdb_b = gdb_in(b.path(), &attach);
    let run_b = run_b.finish();
    assert_eq!(run_b.status, 0, "{}", run_b.stderr);
    let port_b = announced_port(&run_b.stderr);
    assert_ne!(port_a, port_b);
    assert!(gdb_b.stdout_str().contains(&format!("127.0.0.1:{port_b}")), "{}", gdb_b.stdout_str());
}

#[test]
fn a_distro_kernel_without_debug_symbols_is_a_no_debug_info_error() {
    let dir = tempfile::tempdir().unwrap();
    // The newest installed kernel, as `kdf run` boots it by default.
    let run = Running::start(dir.path(), &["-d", "--debug-wait", "--", "true"]);
    let out = gdb_in(dir.path(), &["-batch"]);
    run.terminate();
    let run = run.finish();
    assert_eq!(out.status, 125, "{}", out.stderr);
    assert!(out.stderr.contains("kdf: error: no debug info for the kernel /boot/vmlinuz-"), "{}", out.stderr);
    assert!(out.stderr.contains("/usr/lib/debug/boot/vmlinux-"), "where it looked: {}", out.stderr);
    assert!(out.stderr.contains("kdf: hint: ") && out.stderr.contains("-dbg"), "{}", out.stderr);
    assert!(!out.stderr.contains("Traceback"));
    assert_eq!(run.status, 143, "stopped by SIGTERM: {}", run.stderr);
}

#[test]
fn without_a_run_a_stub_or_gdb_kdf_gdb_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = kdf(dir.path());
    cmd.args(["gdb", "--wait", "0.5"]);
    let out = run_with(cmd, None);
    assert_eq!(out.status, 125);
    assert!(out.stderr.contains("kdf: error: no kdf run started from "), "{}", out.stderr);
    assert!(out.stderr.contains("kdf: hint: start one here with `kdf run -d`"), "{}", out.stderr);

    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = kdf(dir.path());
    cmd.args(["gdb", "--wait", "0.5", "--port", &port.to_string(), "--kernel"]).arg(test_kernel());
    let out = run_with(cmd, None);
    assert_eq!(out.status, 125);
    assert!(
        out.stderr.contains(&format!("kdf: error: nothing is listening on 127.0.0.1:{port}")),
        "{}",
        out.stderr
    );

    let mut cmd = kdf(dir.path());
    cmd.arg("gdb").env("PATH", dir.path());
    let out = run_with(cmd, None);
    assert_eq!(out.status, 125);
    assert!(out.stderr.contains("kdf: error: gdb is not installed"), "{}", out.stderr);
    assert!(out.stderr.contains("kdf: hint: sudo apt install gdb"), "{}", out.stderr);
}
