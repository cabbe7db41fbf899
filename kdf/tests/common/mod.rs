//! Shared helpers for the VM integration tests: run the real `kdf` binary with
//! an isolated cache, feed it stdin, and never wait forever.

#![allow(dead_code)]

pub mod arm64;
pub mod debug;
pub mod kernel;
pub mod modules;
pub mod pty;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest any single kdf invocation may take in a test.
pub const LIMIT: Duration = Duration::from_secs(180);

pub fn kdf_bin() -> PathBuf {
    std::env::var_os("KDF_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kdf")))
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The kdf-init the tests boot: `KDF_INIT`, else the workspace's musl build.
pub fn kdf_init() -> PathBuf {
    let path = std::env::var_os("KDF_INIT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/x86_64-unknown-linux-musl/release/kdf-init"));
    assert!(
        path.is_file(),
        "kdf-init not found at {}: run scripts/test.sh, or build it with \
         `cargo build --release -p kdf-init --target x86_64-unknown-linux-musl`",
        path.display()
    );
    path
}

/// A test-kernel directory from the environment (`scripts/test.sh` sets both).
fn test_kernel_dir(name: &str) -> PathBuf {
    let Some(dir) = std::env::var_os(name).filter(|v| !v.is_empty()) else {
        panic!(
            "{name} is not set: run scripts/test.sh, or export KDF_TEST_KERNEL_SRC=$(scripts/fetch-kernel-source.sh) \
             and KDF_TEST_KERNEL_BUILD=$(scripts/build-test-kernel.sh \"$KDF_TEST_KERNEL_SRC\")"
        )
    };
    let dir = PathBuf::from(dir);
    assert!(dir.is_dir(), "{name}={} is not a directory", dir.display());
    dir
}

/// The test kernel's source tree (read-only: tests build out of tree).
pub fn test_kernel_src() -> PathBuf {
    test_kernel_dir("KDF_TEST_KERNEL_SRC")
}

/// The test kernel's fast-profile build directory (Rust on).
pub fn test_kernel_build() -> PathBuf {
    test_kernel_dir("KDF_TEST_KERNEL_BUILD")
}

/// One cache for all tests (parallel runs share it, as users' runs do).
pub fn cache_dir() -> PathBuf {
    let dir = workspace().join("target/kdf-test-cache");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The tests' runtime directory (never the developer's own).
pub fn runtime_dir() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = workspace().join("target/kdf-test-runtime");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// `kdf` with the test cache, runtime directory and kdf-init, run in `cwd`.
pub fn kdf(cwd: &Path) -> Command {
    in_test_env(Command::new(kdf_bin()), cwd)
}

/// `cmd` (kdf, or a program that runs it) in `cwd` with the test cache,
/// runtime directory and kdf-init.
pub fn in_test_env(mut cmd: Command, cwd: &Path) -> Command {
    cmd.current_dir(cwd)
        .env("XDG_CACHE_HOME", cache_dir())
        .env("XDG_RUNTIME_DIR", runtime_dir())
        .env("KDF_INIT", kdf_init());
    cmd
}

#[derive(Debug)]
pub struct Out {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub took: Duration,
}

impl Out {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr without kdf's one-line KVM fallback notice: on a machine where
    /// /dev/kvm opens but cannot boot Linux, every run started before the first
    /// one recorded that verdict prints it (a fresh cache, parallel tests).
    pub fn command_stderr(&self) -> String {
        let notice = |l: &str| l.starts_with("kdf: KVM cannot boot Linux on this machine");
        self.stderr.split_inclusive('\n').filter(|l| !notice(l)).collect()
    }
}

/// Runs `cmd` with `stdin` piped in (or /dev/null), killing it after `LIMIT`.
pub fn run_with(mut cmd: Command, stdin: Option<Vec<u8>>) -> Out {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn kdf");
    let feeder = stdin.map(|data| {
        let mut pipe = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("kdf did not finish within {LIMIT:?}: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed();
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let stdout = out_t.join().unwrap();
    let stderr = String::from_utf8_lossy(&err_t.join().unwrap()).into_owned();
    use std::os::unix::process::ExitStatusExt;
    let status = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Out { status, stdout, stderr, took }
}

/// Waits for a kdf started with `spawn` (its pipes, if any, hold little).
/// Waits for `child` to exit, failing the test after `limit`.
pub fn exit_within(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(start.elapsed() < limit, "kdf still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn wait(mut child: std::process::Child) -> Out {
    let start = Instant::now();
    let status = exit_within(&mut child, LIMIT);
    let mut stdout = Vec::new();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_end(&mut stdout).unwrap();
    }
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr).unwrap();
    }
    use std::os::unix::process::ExitStatusExt;
    let status = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Out { status, stdout, stderr, took: start.elapsed() }
}

/// `kdf run ARGS` in `cwd` with no stdin.
pub fn run_in(cwd: &Path, args: &[&str]) -> Out {
    let mut cmd = kdf(cwd);
    cmd.arg("run").args(args);
    run_with(cmd, None)
}

/// `kdf run -- ARGV` in a fresh temporary directory.
pub fn run(argv: &[&str]) -> Out {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--"];
    args.extend_from_slice(argv);
    run_in(dir.path(), &args)
}

/// `kdf run -- sh -c SCRIPT` in `cwd`.
pub fn sh_in(cwd: &Path, script: &str) -> Out {
    run_in(cwd, &["--", "sh", "-c", script])
}

pub fn sh(script: &str) -> Out {
    let dir = tempfile::tempdir().unwrap();
    sh_in(dir.path(), script)
}

/// Asserts success and returns stdout, showing stderr on failure.
pub fn ok(out: Out) -> String {
    assert_eq!(out.status, 0, "kdf failed; stderr:\n{}", out.stderr);
    out.stdout_str()
}
