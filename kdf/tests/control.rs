//! Post-mortem and VM control with real VMs (TCG where KVM cannot boot
//! Linux): a vmcore of a panic that drgn reads, `kdf dump` and `kdf qmp` of a
//! running VM, `--qmp`, scratch and read-only disks, NUMA nodes.
//!
//! drgn comes from PyPI (scripts/setup.sh installs it into a venv):
//! `KDF_DRGN`, else `drgn` on PATH, else `$XDG_CACHE_HOME/kdf/drgn/bin/drgn`.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn drgn() -> PathBuf {
    if let Some(path) = std::env::var_os("KDF_DRGN") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("drgn"))
        .find(|p| p.is_file());
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
    let venv = cache.join("kdf/drgn/bin/drgn");
    on_path.or_else(|| venv.is_file().then_some(venv)).unwrap_or_else(|| {
        panic!("drgn not found (KDF_DRGN, PATH, {}): run scripts/setup.sh", cache.join("kdf/drgn").display())
    })
}

/// Runs a drgn script against `core` with the test kernel's symbols.
fn drgn_reads(core: &Path, script: &str) -> String {
    let vmlinux = test_kernel_build().join("vmlinux");
    let out = Command::new(drgn())
        .args(["-q", "-c"])
        .arg(core)
        .arg("-s")
        .arg(&vmlinux)
        .args(["-e", script])
        .output()
        .expect("run drgn");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "drgn failed on {}:\n{stdout}\n{stderr}", core.display());
    stdout.into_owned()
}

/// What drgn says about a kernel's memory: init_task's name, the panic line
/// in the kernel log (if any), the names of the tasks.
const SCRIPT: &str = "from drgn.helpers.linux.printk import get_dmesg\n\
    from drgn.helpers.linux.pid import for_each_task\n\
    print('comm', prog['init_task'].comm.string_().decode())\n\
    print('release', prog['init_uts_ns'].name.release.string_().decode())\n\
    print('panic', [l for l in get_dmesg(prog).decode().splitlines() if 'Kernel panic - not syncing' in l][:1])\n\
    print('tasks', sorted(set(t.comm.string_().decode() for t in for_each_task(prog))))";

#[test]
fn a_panic_with_vmcore_leaves_a_dump_drgn_reads() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = test_kernel_build();
    let out = run_in(
        dir.path(),
        &[
            "--kernel",
            kernel.to_str().unwrap(),
            "--vmcore",
            "core",
            "--",
            "sh",
            "-c",
            "echo c > /proc/sysrq-trigger",
        ],
    );
    assert_eq!(out.status, 120, "{}", out.stderr);
    assert!(out.stderr.contains("kernel panic: sysrq triggered crash"), "{}", out.stderr);
    let core = dir.path().join("core");
    assert!(
        out.stderr.contains(&format!("is in {} (kdump-zlib", core.display())),
        "where the dump is: {}",
        out.stderr
    );
    let said = drgn_reads(&core, SCRIPT);
    assert!(said.contains("comm swapper/0"), "{said}");
    assert!(said.contains("Kernel panic - not syncing: sysrq triggered crash"), "{said}");
    assert!(said.contains("'sh'"), "the command that crashed it: {said}");
}

#[test]
fn without_vmcore_a_panic_leaves_no_dump() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = test_kernel_build();
    let out = run_in(
        dir.path(),
        &["--kernel", kernel.to_str().unwrap(), "--", "sh", "-c", "echo c > /proc/sysrq-trigger"],
    );
    assert_eq!(out.status, 120, "{}", out.stderr);
    assert!(!out.stderr.contains("vmcore") && !out.stderr.contains("memory at the panic"), "{}", out.stderr);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A `kdf run` whose command says `ready` and waits for the file `done` in
/// its directory; killed if a test fails before it ends.
struct WaitingRun {
    dir: PathBuf,
    child: Option<std::process::Child>,
    stdout: BufReader<std::process::ChildStdout>,
}

impl WaitingRun {
    fn start(dir: &Path, args: &[&str]) -> WaitingRun {
        let script = "echo ready; while [ ! -e done ]; do sleep 0.2; done; echo finished";
        let mut cmd = kdf(dir);
        cmd.arg("run").args(args).args(["--", "sh", "-c", script]);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kdf run");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut run = WaitingRun { dir: dir.to_path_buf(), child: Some(child), stdout };
        let mut line = String::new();
        run.stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n", "the run did not start its command");
        run
    }

    /// Lets the command end; its status and the rest of its stdout.
    fn finish(mut self) -> (Out, String) {
        std::fs::write(self.dir.join("done"), "").unwrap();
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        (wait(self.child.take().unwrap()), rest)
    }
}

impl Drop for WaitingRun {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn kdf_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> Out {
    let mut cmd = kdf(dir);
    cmd.args(args);
    run_with(cmd, stdin.map(|s| s.as_bytes().to_vec()))
}

#[test]
fn a_running_vm_is_dumped_and_queried_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = test_kernel_build();
    let run = WaitingRun::start(dir.path(), &["--kernel", kernel.to_str().unwrap()]);

    let status = kdf_in(dir.path(), &["qmp", "query-status"], None);
    assert_eq!(status.status, 0, "{}", status.stderr);
    assert!(status.stdout_str().contains("\"status\": \"running\""), "{}", status.stdout_str());
    let lines = "query-name\n{\"execute\": \"query-kvm\"}\n";
    let passed = kdf_in(dir.path(), &["qmp"], Some(lines));
    assert_eq!(passed.status, 0, "{}", passed.stderr);
    assert_eq!(
        passed.stdout_str().lines().filter(|l| l.starts_with("{\"return\"")).count(),
        2,
        "{}",
        passed.stdout_str()
    );
    let refused = kdf_in(dir.path(), &["qmp"], Some("no-such-command\n"));
    assert_eq!(refused.status, 1, "a refused command: {}", refused.stdout_str());
    assert!(refused.stdout_str().contains("CommandNotFound"), "{}", refused.stdout_str());

    let dumped = kdf_in(dir.path(), &["dump", "live.core"], None);
    assert_eq!(dumped.status, 0, "{}", dumped.stderr);
    let said = drgn_reads(&dir.path().join("live.core"), SCRIPT);
    assert!(said.contains("comm swapper/0") && said.contains("panic []"), "{said}");
    assert!(said.contains("'sleep'") || said.contains("'sh'"), "the command's processes: {said}");

    let (out, rest) = run.finish();
    assert_eq!((out.status, rest.as_str()), (0, "finished\n"), "the run went on: {}", out.stderr);
}

#[test]
fn qmp_serves_a_socket_of_your_choosing_and_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("qmp.sock");
    let kernel = test_kernel_build();
    let args = ["--kernel", kernel.to_str().unwrap(), "--qmp", socket.to_str().unwrap()];
    let run = WaitingRun::start(dir.path(), &args);
    {
        let mut greeting = String::new();
        let s = UnixStream::connect(&socket).expect("connect to --qmp");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        BufReader::new(s).read_line(&mut greeting).unwrap();
        assert!(greeting.starts_with("{\"QMP\""), "{greeting}");
    }
    // The connection above is closed: QEMU takes the next client.
    let status = kdf_in(dir.path(), &["qmp", "query-status"], None);
    assert!(status.stdout_str().contains("running"), "{}", status.stderr);
    assert_eq!(run.finish().0.status, 0);
    assert!(!socket.exists(), "the socket is removed at the end");
}

#[test]
fn dump_and_qmp_without_a_run_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = kdf_in(dir.path(), &["dump", "core"], None);
    assert_eq!(out.status, 125);
    assert!(out.stderr.contains("no kdf run started from"), "{}", out.stderr);
    assert!(!dir.path().join("core").exists());
    let out = kdf_in(dir.path(), &["qmp", "query-status"], None);
    assert!(out.stderr.contains("no kdf run started from"), "{}", out.stderr);
}

/// Formats the first disk, mounts it, writes and reads back; then tries to
/// write the second one (read-only); the links by id.
const DISK_SCRIPT: &str = "set -e; mkfs.ext4 -q /dev/vda; mkdir /tmp/m; mount /dev/vda /tmp/m; \
    echo written > /tmp/m/f; sync; cat /tmp/m/f; umount /tmp/m; \
    if dd if=/dev/zero of=/dev/vdb bs=4096 count=1 conv=notrunc 2>/dev/null; then echo ro-written; else echo ro-refused; fi; \
    cat /sys/block/vdb/ro; readlink /dev/disk/by-id/virtio-scratch0 /dev/disk/by-id/virtio-base.img";

fn disks_work(kernel: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.img");
    std::fs::write(&base, vec![0x5a; 1 << 20]).unwrap();
    let mut args = kernel.to_vec();
    args.extend(["--disk", "size=64M", "--disk", "base.img,ro", "--", "sh", "-c", DISK_SCRIPT]);
    let out = run_in(dir.path(), &args);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.stdout_str(), "written\nro-refused\n1\n../../vda\n../../vdb\n", "{}", out.stderr);
    assert_eq!(std::fs::read(&base).unwrap(), vec![0x5a; 1 << 20], "the read-only file is unchanged");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the scratch disk left nothing behind");
}

#[test]
fn scratch_and_read_only_disks_on_the_test_kernel() {
    let kernel = test_kernel_build();
    disks_work(&["--kernel", kernel.to_str().unwrap()]);
}

#[test]
fn scratch_and_read_only_disks_on_the_distribution_kernel() {
    disks_work(&[]);
}

#[test]
fn a_missing_disk_file_is_refused_before_boot() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = run_in(dir.path(), &["--disk", "nothing.img", "--", "true"]);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("--disk") && out.stderr.contains("nothing.img does not exist"),
        "{}",
        out.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(30), "no VM was started");
}

#[test]
fn numa_nodes_on_the_distribution_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--cpus", "2", "-m", "1G", "--numa", "512M,cpus=0", "--numa", "512M,cpus=1"];
    let script = "ls -d /sys/devices/system/node/node*; cat /sys/devices/system/node/node1/cpulist \
                  /sys/devices/system/node/node0/distance";
    let out =
        run_in(dir.path(), &[&args[..], &["--numa-distance", "0,1=30", "--", "sh", "-c", script]].concat());
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout_str(),
        "/sys/devices/system/node/node0\n/sys/devices/system/node/node1\n1\n10 30\n",
        "{}",
        out.stderr
    );
}

#[test]
fn a_numa_layout_that_does_not_fit_is_refused_before_boot() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(
        dir.path(),
        &["--cpus", "2", "-m", "1G", "--numa", "512M,cpus=0", "--numa", "256M,cpus=1", "--", "true"],
    );
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(out.stderr.contains("768 MiB of memory in all, the guest has 1024 MiB"), "{}", out.stderr);
    let out = run_in(dir.path(), &["--cpus", "2", "--numa", "1G,cpus=0", "--", "true"]);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(out.stderr.contains("CPU 1 is in no --numa node"), "{}", out.stderr);
}

#[test]
fn numa_on_a_kernel_without_acpi_is_refused_before_boot() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = test_kernel_build();
    let args = [
        "--kernel",
        kernel.to_str().unwrap(),
        "--cpus",
        "2",
        "--numa",
        "512M,cpus=0",
        "--numa",
        "512M,cpus=1",
    ];
    let out = run_in(dir.path(), &[&args[..], &["--", "true"]].concat());
    assert_eq!(out.status, 125, "{}", out.stderr);
    assert!(out.stderr.contains("lacks CONFIG_ACPI_NUMA"), "{}", out.stderr);
}
