//! The in-tree loop: `kdf run` inside a kernel source tree boots that tree's
//! build, `kdf run --build` rebuilds it first, and a build that fails ends
//! with 125 and its error lines (real VMs under TCG).
//!
//! They use the test kernel (`KDF_TEST_KERNEL_SRC`, `KDF_TEST_KERNEL_BUILD`;
//! `scripts/test.sh` sets both) and leave both as a no-change `kdf kernel
//! build` does. The cached source cannot get a `.kdf-build`, so its build is
//! the one `kdf kernel build -O` records; a tree that fails to build is a
//! copy made of symlinks with one broken file.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use common::*;

fn env_dir(name: &str) -> PathBuf {
    let dir = std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let dir = dir.unwrap_or_else(|| panic!("{name} is not set: run scripts/test.sh (see tests/kernel.rs)"));
    assert!(dir.is_dir(), "{name}={} is not a directory", dir.display());
    dir
}

fn source() -> PathBuf {
    env_dir("KDF_TEST_KERNEL_SRC")
}

fn build() -> PathBuf {
    env_dir("KDF_TEST_KERNEL_BUILD")
}

fn release_of(build: &Path) -> String {
    std::fs::read_to_string(build.join("include/config/kernel.release")).unwrap().trim().to_string()
}

fn vmlinux_mtime() -> SystemTime {
    std::fs::metadata(build().join("vmlinux")).unwrap().modified().unwrap()
}

/// `kdf kernel build -O BUILD` with nothing changed, which also records BUILD
/// as the source tree's build in the test cache.
fn no_change_build() -> Out {
    let build = build();
    let mut cmd = kdf(&build);
    cmd.args(["kernel", "build", "-O"]).arg(&build);
    let out = run_with(cmd, None);
    assert_eq!(out.status, 0, "{}", out.stderr);
    out
}

/// Runs of digits compare as numbers: 6.10 is newer than 6.9.
fn version_key(v: &str) -> Vec<Result<u64, String>> {
    v.as_bytes()
        .chunk_by(|a, b| a.is_ascii_digit() == b.is_ascii_digit())
        .map(|run| {
            let run = String::from_utf8_lossy(run);
            run.parse().map_err(|_| run.into_owned())
        })
        .collect()
}

/// The newest `/boot/vmlinuz-V` that has `/lib/modules/V`.
fn newest_installed() -> String {
    let releases = std::fs::read_dir("/boot").unwrap().flatten().filter_map(|e| {
        let v = e.file_name().to_str()?.strip_prefix("vmlinuz-")?.to_string();
        Path::new("/lib/modules").join(&v).is_dir().then_some(v)
    });
    releases.max_by_key(|v| version_key(v)).expect("no installed kernel in /boot")
}

/// A copy of the test kernel's source made of symlinks, except
/// `scripts/basic/fixdep.c`, the first file any build compiles, which does
/// not compile.
fn broken_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = source();
    let mut real = PathBuf::new();
    for level in ["", "scripts", "basic"] {
        real.push(level);
        let (from, to) = (src.join(&real), dir.path().join(&real));
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(&from).unwrap().flatten() {
            let name = entry.file_name();
            if !matches!(name.to_str(), Some("scripts" | "basic" | "fixdep.c")) {
                std::os::unix::fs::symlink(entry.path(), to.join(&name)).unwrap();
            }
        }
    }
    std::fs::write(dir.path().join("scripts/basic/fixdep.c"), "int main(void) { this is not C; }\n").unwrap();
    dir
}

#[test]
fn in_the_kernel_tree_kdf_run_boots_its_build_and_says_why() {
    no_change_build();
    let (src, build) = (source(), build());
    let release = release_of(&build);
    assert_eq!(ok(run_in(&src, &["--", "uname", "-r"])), format!("{release}\n"));
    let dry = ok(run_in(&src.join("fs/fuse"), &["--dry-run"]));
    let first = dry.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("# kernel: {}, the build of the kernel tree", build.display())),
        "{dry}"
    );
    // -v says it on stderr too.
    let out = run_in(&src, &["-v", "--", "true"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("kdf: kernel: {}, the build of", build.display())),
        "{}",
        out.stderr
    );
}

#[test]
fn outside_any_tree_kdf_run_boots_the_newest_installed_kernel() {
    let out = run(&["uname", "-r"]);
    assert_eq!(ok(out), format!("{}\n", newest_installed()));
}

#[test]
fn build_with_nothing_changed_costs_a_no_change_build_plus_the_boot() {
    let (src, build) = (source(), build());
    let release = release_of(&build);
    let before = vmlinux_mtime();
    let b = no_change_build().took;
    let dir = tempfile::tempdir().unwrap();
    let boot = run_in(dir.path(), &["--kernel", build.to_str().unwrap(), "--", "uname", "-r"]);
    let r = boot.took;
    assert_eq!(ok(boot), format!("{release}\n"));
    let explicit = ["--build", "--kernel", build.to_str().unwrap(), "--", "uname", "-r"];
    for (cwd, args) in [
        (src.clone(), &["--build", "--", "uname", "-r"][..]),
        (src.join("fs/fuse"), &["--build", "--", "uname", "-r"][..]),
        (dir.path().to_path_buf(), &explicit[..]),
    ] {
        let out = run_in(&cwd, args);
        let took = out.took;
        assert_eq!(out.status, 0, "in {}: {}", cwd.display(), out.stderr);
        assert_eq!(out.stdout_str(), format!("{release}\n"), "in {}", cwd.display());
        // Silent without a terminal: no progress, no summary.
        assert!(!out.stderr.contains("step") && !out.stderr.contains("built"), "{}", out.stderr);
        // The machine is shared and noisy: twice the sum, plus slack.
        let limit = (b + r) * 2 + Duration::from_secs(10);
        assert!(took < limit, "--build in {} took {took:?}; build {b:?} + boot {r:?}", cwd.display());
    }
    assert_eq!(vmlinux_mtime(), before, "a no-change --build relinked vmlinux");
    assert!(build.join("kdf-build.log").is_file(), "the build's log is kept in the build directory");
}

#[test]
fn a_tree_whose_build_fails_ends_with_125_and_the_error_lines() {
    let tree = broken_tree();
    let kdf_build = tree.path().join(".kdf-build");
    // No build yet: --build configures first, and that fails on fixdep.c too.
    let out = run_in(&tree.path().join("scripts"), &["--build", "--", "true"]);
    assert_eq!(out.status, 125, "{}", out.stderr);
    assert!(out.stderr.contains("make allnoconfig failed"), "{}", out.stderr);
    assert!(out.stderr.contains("fixdep.c:1:18: error: unknown type name"), "{}", out.stderr);
    // A configured build directory: the build itself fails.
    std::fs::copy(build().join(".config"), kdf_build.join(".config")).unwrap();
    std::fs::remove_file(kdf_build.join("kdf-requested.config")).unwrap();
    let out = run_in(&tree.path().join("scripts/basic"), &["--build", "--", "true"]);
    assert_eq!(out.status, 125, "{}", out.stderr);
    let log = kdf_build.join("kdf-build.log");
    assert!(out.stderr.contains("the kernel build of"), "{}", out.stderr);
    assert!(out.stderr.contains("fixdep.c:1:18: error: unknown type name"), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("hint: the whole log is {}", log.display())), "{}", out.stderr);
    assert!(std::fs::read_to_string(&log).unwrap().contains("error: unknown type name"));
    // The same with --kernel naming the build directory, from outside the tree.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = run_in(elsewhere.path(), &["--build", "--kernel", kdf_build.to_str().unwrap(), "--", "true"]);
    assert_eq!(out.status, 125, "{}", out.stderr);
    assert!(out.stderr.contains("fixdep.c:1:18: error"), "{}", out.stderr);
}

/// Runs `kdf run ARGS` in `cwd` with stderr on a pseudo-terminal (stdin
/// and stdout are not terminals); returns the status and what the terminal
/// showed.
fn run_with_terminal_stderr(cwd: &Path, args: &[&str]) -> (i32, String) {
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut cmd = kdf(cwd);
    cmd.arg("run").args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(pty.slave);
    let mut child = cmd.spawn().unwrap();
    // Our copy of the terminal's slave side goes with `cmd`.
    drop(cmd);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("kdf did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The output is a few lines, well within the terminal's buffer; with
    // every slave closed, the master reads it, then fails with EIO.
    let mut text = Vec::new();
    let _ = std::fs::File::from(pty.master).read_to_end(&mut text);
    (status.code().unwrap_or(128), String::from_utf8_lossy(&text).into_owned())
}

#[test]
fn a_tree_without_a_build_boots_the_installed_kernel_and_hints_only_on_a_terminal() {
    let tree = broken_tree();
    let out = run_in(tree.path(), &["--", "uname", "-r"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.stdout_str(), format!("{}\n", newest_installed()));
    assert!(!out.stderr.contains("--build"), "a hint on a non-terminal stderr: {}", out.stderr);
    let (status, terminal) = run_with_terminal_stderr(tree.path(), &["--", "true"]);
    assert_eq!(status, 0, "{terminal}");
    let hint = format!(
        "the kernel tree {} has no built kernel; `kdf run --build` builds and boots it",
        tree.path().display()
    );
    assert!(terminal.contains(&hint), "{terminal}");
}
