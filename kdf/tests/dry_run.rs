//! `--dry-run` prints exactly what runs: the same run started for real, with
//! a fake QEMU and a fake virtiofsd (through `KDF_QEMU`/`KDF_VIRTIOFSD`) that
//! record their argv and the descriptors they were handed. No VM boots.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// A fake program that records its argv (NUL-separated) and what its fds
/// 3..12, 72 (the gdb stub's) and 73..74 (a scratch disk) are into
/// `DIR/NAME.<pid>.{argv,fds}`, then runs `then`.
fn fake(dir: &Path, name: &str, then: &str) -> std::path::PathBuf {
    let path = dir.join(format!("fake-{name}"));
    let script = format!(
        "#!/bin/sh\nout={dir}/{name}.$$\nprintf '%s\\0' \"$0\" \"$@\" > \"$out.argv\"\n\
         for fd in 3 4 5 6 7 8 9 10 11 12 72 73 74; do echo \"$fd $(readlink /proc/$$/fd/$fd)\"; done > \"$out.fds\"\n{then}\n",
        dir = dir.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The argvs of the commands `--dry-run` printed, unquoted by `sh`.
fn dry_run_argvs(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let out = Command::new("sh").arg("-c").arg(format!("printf '%s\\0' {line}")).output().unwrap();
            assert!(out.status.success(), "sh could not read back: {line}");
            split_nul(&out.stdout)
        })
        .collect()
}

fn split_nul(bytes: &[u8]) -> Vec<String> {
    let mut v: Vec<String> =
        bytes.split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect();
    v.pop();
    v
}

/// Every file `NAME.*.SUFFIX` the fakes wrote.
fn recorded(dir: &Path, name: &str, suffix: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&format!("{name}.")) && n.ends_with(suffix)
        })
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    out.sort();
    out
}

fn check(extra: &[&str], shares: usize) {
    let work = tempfile::tempdir().unwrap();
    let rec = tempfile::tempdir().unwrap();
    let shared = tempfile::tempdir().unwrap();
    let qemu = fake(rec.path(), "qemu", "exit 1");
    let virtiofsd = fake(rec.path(), "virtiofsd", "exec sleep 30");
    let mut args = vec!["--accel", "tcg", "--rw", shared.path().to_str().unwrap(), "--cmdline", "a=b c"];
    args.extend_from_slice(extra);
    let cmd = |dry: bool| {
        let mut cmd = kdf(work.path());
        cmd.env("KDF_QEMU", &qemu).env("KDF_VIRTIOFSD", &virtiofsd).arg("run").args(&args);
        if dry {
            cmd.arg("--dry-run");
        }
        cmd.args(["--", "true"]);
        cmd
    };
    let printed = ok(run_with(cmd(true), None));
    let mut argvs = dry_run_argvs(&printed);
    let out = run_with(cmd(false), None);
    assert_eq!(out.status, 125, "the fake QEMU exits at once: {}", out.stderr);

    let qemu_argv = argvs.pop().expect("a QEMU line");
    let ran = recorded(rec.path(), "qemu", ".argv");
    assert_eq!(ran.len(), 1, "QEMU started once");
    assert_eq!(split_nul(&ran[0]), qemu_argv, "dry run:\n{printed}");
    let mut daemons: Vec<Vec<String>> =
        recorded(rec.path(), "virtiofsd", ".argv").iter().map(|a| split_nul(a)).collect();
    daemons.sort();
    argvs.sort();
    assert_eq!(daemons, argvs, "dry run:\n{printed}");
    assert_eq!(daemons.len(), if extra.contains(&"--9p") { 0 } else { shares });

    // The numbers on the command lines are the descriptors the children got.
    let fds = String::from_utf8(recorded(rec.path(), "qemu", ".fds").remove(0)).unwrap();
    let socket = |n: usize| fds.lines().any(|l| l.starts_with(&format!("{n} socket:")));
    assert!(socket(3) && socket(4) && socket(5), "console, channel and attach channel: {fds}");
    assert!(socket(7), "the QMP socket others connect to: {fds}");
    assert_eq!(socket(6), extra.contains(&"--vmcore"), "kdf's own QMP monitor only with --vmcore: {fds}");
    for i in 0..daemons.len() {
        assert!(socket(8 + i), "share {i}: {fds}");
    }
    assert!(!socket(8 + daemons.len()), "no other sockets leak into QEMU: {fds}");
    assert_eq!(socket(72), extra.contains(&"-d"), "the gdb stub's listening socket with -d: {fds}");
    // A scratch disk (the first --disk here): the same unlinked file, twice.
    let file =
        |n: usize| fds.lines().find_map(|l| l.strip_prefix(&format!("{n} "))).unwrap_or("").to_string();
    if extra.contains(&"size=8M") {
        assert!(file(73).ends_with("(deleted)") && file(73) == file(74), "{fds}");
    } else {
        assert!(file(73).is_empty(), "{fds}");
    }
    for f in recorded(rec.path(), "virtiofsd", ".fds") {
        let f = String::from_utf8(f).unwrap();
        assert!(f.lines().any(|l| l.starts_with("3 socket:")) && !f.contains("4 socket:"), "{f}");
    }
}

#[test]
fn dry_run_prints_exactly_the_argv_that_runs_over_virtiofs() {
    // Shares: /, the working directory, --rw.
    check(&[], 3);
}

#[test]
fn dry_run_prints_exactly_the_argv_that_runs_over_9p() {
    check(&["--9p", "-d", "--cpus", "2"], 3);
}

#[test]
fn dry_run_prints_exactly_the_argv_that_runs_with_disks_numa_and_a_vmcore() {
    let disk = tempfile::NamedTempFile::new().unwrap();
    let ro = format!("{},ro", disk.path().display());
    let args = ["--disk", "size=8M", "--disk", &ro, "--vmcore", "core", "--cpus", "2", "-m", "1G"];
    let numa = ["--numa", "512M,cpus=0", "--numa", "512M,cpus=1", "--numa-distance", "0,1=20"];
    check(&[&args[..], &numa[..]].concat(), 3);
}

#[test]
fn dry_run_prints_exactly_the_argv_that_runs_with_another_root_and_a_network() {
    // Shares: the root (a static `true` alone), the working directory, --rw,
    // the installed kernel's modules (the root has none).
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.path().join("bin/true")).unwrap();
    let root = root.path().to_str().unwrap();
    check(&["--root", root, "--network", "user", "--forward", "18080:80"], 4);
}
