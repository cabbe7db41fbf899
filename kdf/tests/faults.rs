//! kdf under faults, load and bad input: every ending leaves no process,
//! socket or runtime directory behind and has its documented status; nothing
//! hangs; bad input gets one clear line and a hint.
//!
//! A run's processes are found by a marker unique to the test (its temporary
//! directory's name) in their environment, which kdf's children inherit (and
//! on the kernel command line), never by name.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A test's own cwd, runtime dir and marker.
struct Marked {
    dir: tempfile::TempDir,
    runtime: PathBuf,
}

impl Marked {
    fn new() -> Marked {
        let dir = tempfile::Builder::new().prefix("kdf-fault-").tempdir().unwrap();
        let runtime = dir.path().join("xdg-runtime");
        std::fs::create_dir(&runtime).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        Marked { dir, runtime }
    }

    fn marker(&self) -> String {
        self.dir.path().file_name().unwrap().to_string_lossy().into_owned()
    }

    fn cwd(&self) -> &Path {
        self.dir.path()
    }

    /// `kdf run` with this test's runtime dir and marker.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = kdf(self.cwd());
        cmd.env("XDG_RUNTIME_DIR", &self.runtime).env("KDF_TEST_MARKER", self.marker());
        cmd.args(["run", "--cmdline", &format!("kdf.marker={}", self.marker())]).args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Out {
        run_with(self.cmd(args), None)
    }

    /// Starts a run whose command runs `setup`, prints `ready`, then runs `rest`.
    fn start(&self, setup: &str, rest: &str) -> Child {
        let mut cmd = self.cmd(&["--", "sh", "-c", &format!("{setup} echo ready; {rest}")]);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut buf = [0u8; 6];
        child.stdout.as_mut().unwrap().read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ready\n");
        child
    }

    /// PIDs of processes (other than the test) with the marker in their
    /// environment (kdf and every child: QEMU, each virtiofsd) or argv.
    fn processes(&self) -> Vec<(u32, String)> {
        let me = std::process::id();
        let env_marker = format!("KDF_TEST_MARKER={}", self.marker());
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != me)
            .filter_map(|pid| {
                let argv = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let argv = String::from_utf8_lossy(&argv).replace('\0', " ");
                let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                let marked = environ.split(|&b| b == 0).any(|v| v == env_marker.as_bytes());
                (marked || argv.contains(&self.marker())).then_some((pid, argv))
            })
            .collect()
    }

    fn pid_of(&self, program: &str) -> u32 {
        let start = Instant::now();
        loop {
            if let Some((pid, _)) = self.processes().into_iter().find(|(_, a)| a.contains(program)) {
                return pid;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "no {program} process for this run");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What is left in the runtime dir (sockets, run directories, locks).
    fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(self.runtime.join("kdf"))
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    }

    /// Nothing of this run may remain (processes get a moment to die).
    fn assert_clean(&self) {
        let start = Instant::now();
        while !self.processes().is_empty() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(self.processes().is_empty(), "left behind: {:?}", self.processes());
        assert!(self.leftovers().is_empty(), "left in the runtime dir: {:?}", self.leftovers());
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: signalling a process this test started (or found by its marker).
    unsafe { libc::kill(pid as i32, sig) };
}

// ---- (1) Every ending cleans up ----

#[test]
fn ending_normally_or_with_an_error_leaves_nothing() {
    let m = Marked::new();
    assert_eq!(m.run(&["--", "true"]).status, 0);
    m.assert_clean();
    assert_eq!(m.run(&["--", "sh", "-c", "exit 3"]).status, 3);
    m.assert_clean();
}

#[test]
fn timeout_leaves_nothing() {
    let m = Marked::new();
    let out = m.run(&["--timeout", "6", "--", "sh", "-c", "trap '' TERM; sleep 600"]);
    assert_eq!(out.status, 124, "{}", out.stderr);
    m.assert_clean();
}

#[test]
fn sigint_sigterm_sighup_to_kdf_stop_the_vm_after_the_grace_period() {
    for (sig, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM"), (libc::SIGHUP, "SIGHUP")] {
        let m = Marked::new();
        // The command ignores the signal, so kdf must stop the VM itself.
        let child = m.start("trap '' INT TERM HUP;", "while :; do sleep 1; done");
        signal(child.id(), sig);
        let out = wait(child);
        assert_eq!(out.status, 128 + sig, "{name}: {}", out.stderr);
        assert!(out.stderr.contains(&format!("kdf: stopped the VM after {name}")), "{}", out.stderr);
        m.assert_clean();
    }
}

#[test]
fn sigkill_to_kdf_takes_its_children_and_the_next_run_cleans_up() {
    let m = Marked::new();
    let child = m.start("", "sleep 600");
    assert!(!m.processes().is_empty());
    signal(child.id(), libc::SIGKILL);
    let _ = wait(child);
    let start = Instant::now();
    while !m.processes().is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(m.processes().is_empty(), "children survived kdf: {:?}", m.processes());
    assert!(!m.leftovers().is_empty(), "a SIGKILLed run cannot clean up after itself");
    assert_eq!(m.run(&["--", "true"]).status, 0);
    m.assert_clean();
}

#[test]
fn qemu_crashing_is_a_vm_failure_and_leaves_nothing() {
    let m = Marked::new();
    let child = m.start("", "sleep 600");
    signal(m.pid_of("qemu-system"), libc::SIGKILL);
    let out = wait(child);
    assert_eq!(out.status, 125, "{}", out.stderr);
    assert!(out.stderr.contains("kdf: QEMU exited"), "{}", out.stderr);
    m.assert_clean();
}

#[test]
fn virtiofsd_crashing_mid_run_ends_the_run_with_125() {
    let m = Marked::new();
    let child = m.start("", "while :; do ls >/dev/null; sleep 0.2; done");
    signal(m.pid_of("virtiofsd"), libc::SIGKILL);
    let out = wait(child);
    assert_eq!(out.status, 125, "{}", out.stderr);
    assert!(out.stderr.contains("virtiofsd serving the guest's files exited"), "{}", out.stderr);
    m.assert_clean();
}

// ---- (2) Never hang ----

#[test]
fn kernel_panic_is_reported_with_the_console_and_a_diagnosis() {
    let m = Marked::new();
    let out = m.run(&["--", "sh", "-c", "echo c > /proc/sysrq-trigger; sleep 600"]);
    assert_eq!(out.status, 120, "a panic is the kernel's failure: {}", out.stderr);
    assert!(out.stderr.contains("[console] "), "{}", out.stderr);
    assert!(
        out.stderr.lines().last().unwrap().contains("kernel panic: sysrq triggered crash"),
        "{}",
        out.stderr
    );
    m.assert_clean();
}

#[test]
fn a_cmdline_that_breaks_init_fails_with_a_diagnosis() {
    let m = Marked::new();
    let out = m.run(&["--cmdline", "rdinit=/nonexistent", "--", "true"]);
    assert_eq!(out.status, 120, "{}", out.stderr);
    assert!(out.stderr.contains("kernel panic:"), "{}", out.stderr);
    assert!(out.took < Duration::from_secs(60));
    m.assert_clean();
}

// A guest that never finishes booting: tests/run_states.rs (a fake QEMU; a
// real kernel's boot time on a loaded machine made a real-VM test flaky).

#[test]
fn kvm_that_cannot_run_the_guest_fails_fast_instead_of_hanging() {
    if !Path::new("/dev/kvm").exists() {
        // Nothing to force: the no-KVM path is the normal one and tested everywhere.
        let out = Marked::new().run(&["--accel", "kvm", "--", "true"]);
        assert_eq!(out.status, 125);
        assert!(out.stderr.contains("KVM is not usable"), "{}", out.stderr);
        return;
    }
    let m = Marked::new();
    let out = m.run(&["--accel", "kvm", "--boot-timeout", "30", "--", "true"]);
    // Where KVM works this simply succeeds; where it is broken it must fail fast.
    assert!(out.status == 0 || out.status == 125, "{}", out.stderr);
    assert!(out.took < Duration::from_secs(45), "took {:?}", out.took);
    m.assert_clean();
}

// ---- (3) Parallel runs ----

#[test]
fn eight_parallel_runs_from_the_same_and_different_directories() {
    let shared = Marked::new();
    let others: Vec<Marked> = (0..4).map(|_| Marked::new()).collect();
    let children: Vec<(usize, Child)> = (0..8)
        .map(|i| {
            let m = if i < 4 { &shared } else { &others[i - 4] };
            let mut cmd = m.cmd(&[
                "--",
                "sh",
                "-c",
                &format!("echo out-{i}; echo err-{i} >&2; echo {i} > file-{i}; exit {i}"),
            ]);
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
            (i, cmd.spawn().unwrap())
        })
        .collect();
    for (i, child) in children {
        let out = wait(child);
        assert_eq!(out.status, i as i32, "run {i}: {}", out.stderr);
        assert_eq!(out.stdout_str(), format!("out-{i}\n"));
        assert_eq!(out.command_stderr(), format!("err-{i}\n"));
        let dir = if i < 4 { shared.cwd() } else { others[i - 4].cwd() };
        assert_eq!(std::fs::read_to_string(dir.join(format!("file-{i}"))).unwrap(), format!("{i}\n"));
    }
    shared.assert_clean();
    others.iter().for_each(Marked::assert_clean);
}

// ---- (4) Bad input: one line, a hint, 125 (or 2), nothing touched ----

fn bad(m: &Marked, args: &[&str], message: &str) -> Out {
    let out = m.run(args);
    assert_eq!(out.status, 125, "{args:?}: {}", out.stderr);
    assert!(out.stderr.contains(message), "{args:?}: expected {message:?} in:\n{}", out.stderr);
    assert!(out.stderr.contains("kdf: hint: "), "{args:?}: no hint in:\n{}", out.stderr);
    assert!(m.processes().is_empty());
    assert!(m.leftovers().iter().all(|l| !l.starts_with("run-")), "{:?}", m.leftovers());
    out
}

#[test]
fn missing_and_non_kernel_files_are_named() {
    let m = Marked::new();
    bad(
        &m,
        &["--kernel", "/nonexistent/bzImage", "--", "true"],
        "the kernel /nonexistent/bzImage does not exist",
    );
    std::fs::write(m.cwd().join("notes.txt"), "not a kernel").unwrap();
    bad(&m, &["--kernel", "notes.txt", "--", "true"], "notes.txt is not a Linux kernel image");
}

/// A build directory for the host's kernel with `edit` applied to its config.
fn fake_build_dir(m: &Marked, edit: &dyn Fn(String) -> String) -> PathBuf {
    let release = std::fs::read_dir("/boot")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("config-").map(str::to_string))
        .max()
        .expect("a /boot/config-* of an installed kernel");
    let dir = m.cwd().join("build");
    std::fs::create_dir_all(dir.join("arch/x86/boot")).unwrap();
    std::fs::create_dir_all(dir.join("include/config")).unwrap();
    let config = std::fs::read_to_string(format!("/boot/config-{release}")).unwrap();
    std::fs::write(dir.join(".config"), edit(config)).unwrap();
    std::fs::copy(format!("/boot/vmlinuz-{release}"), dir.join("arch/x86/boot/bzImage")).unwrap();
    std::fs::write(dir.join("include/config/kernel.release"), &release).unwrap();
    dir
}

#[test]
fn kernels_missing_required_options_are_named() {
    let m = Marked::new();
    let unset = |name: &'static str| {
        move |c: String| {
            c.lines()
                .map(|l| {
                    if l.starts_with(&format!("{name}=")) {
                        format!("# {name} is not set")
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let both = |c: String| unset("CONFIG_9P_FS")(unset("CONFIG_VIRTIO_FS")(c));
    let dir = fake_build_dir(&m, &both);
    bad(&m, &["--kernel", dir.to_str().unwrap(), "--", "true"], "lacks CONFIG_VIRTIO_FS");
    std::fs::remove_dir_all(&dir).unwrap();
    let dir = fake_build_dir(&m, &unset("CONFIG_SERIAL_8250_CONSOLE"));
    bad(&m, &["--kernel", dir.to_str().unwrap(), "--", "true"], "lacks CONFIG_SERIAL_8250_CONSOLE");
}

#[test]
fn a_release_without_modules_is_named() {
    let m = Marked::new();
    let boot = m.cwd().join("boot");
    std::fs::create_dir(&boot).unwrap();
    let image = std::fs::read_dir("/boot")
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
        .unwrap();
    std::fs::copy(image.path(), boot.join("vmlinuz-9.9.9-kdf")).unwrap();
    let mut cmd = m.cmd(&["--release", "9.9.9-kdf", "--", "true"]);
    cmd.env("KDF_BOOT_DIR", &boot).env("KDF_MODULES_DIR", m.cwd().join("modules"));
    let out = run_with(cmd, None);
    assert_eq!(out.status, 125);
    assert!(out.stderr.contains("kernel release 9.9.9-kdf has no modules"), "{}", out.stderr);
    assert!(out.stderr.contains("kdf: hint: "), "{}", out.stderr);
}

#[test]
fn missing_qemu_gets_an_install_hint() {
    let m = Marked::new();
    let mut cmd = m.cmd(&["--", "true"]);
    cmd.env("PATH", m.cwd()).env_remove("KDF_QEMU");
    let out = run_with(cmd, None);
    assert_eq!(out.status, 125);
    assert!(out.stderr.contains("QEMU for x86_64 guests is not installed"), "{}", out.stderr);
    assert!(out.stderr.contains("kdf: hint: sudo apt install qemu-system-x86"), "{}", out.stderr);
}

#[test]
fn shares_and_initramfs_that_are_not_usable_are_named() {
    let m = Marked::new();
    bad(&m, &["--rw", "/nonexistent/share", "--", "true"], "cannot share --rw /nonexistent/share");
    std::fs::write(m.cwd().join("bogus.cpio"), "not an archive").unwrap();
    bad(&m, &["--initramfs", "bogus.cpio", "--", "true"], "is not an uncompressed newc cpio archive");
}

#[test]
fn bad_values_and_conflicts_are_usage_errors() {
    let m = Marked::new();
    for args in [
        &["--memory", "12Q", "--", "true"][..],
        &["--timeout", "-3", "--", "true"],
        &["--timeout", "soon", "--", "true"],
        &["--cpus", "0", "--", "true"],
        &["-c", "echo", "--", "true"],
        &["--virtiofs", "dst=/x", "--", "true"],
    ] {
        let out = m.run(args);
        assert_eq!(out.status, 2, "{args:?}: {}", out.stderr);
    }
}

#[test]
fn unusable_working_directories_are_refused() {
    let m = Marked::new();
    // Deleted.
    let gone = m.cwd().join("gone");
    std::fs::create_dir(&gone).unwrap();
    let script = format!("cd '{}' && rmdir '{}' && exec \"$@\"", gone.display(), gone.display());
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script, "sh"]).arg(kdf_bin()).args(["run", "--", "true"]);
    cmd.env("XDG_CACHE_HOME", cache_dir()).env("KDF_INIT", kdf_init()).env("XDG_RUNTIME_DIR", &m.runtime);
    let out = run_with(cmd, None);
    assert_eq!(out.status, 125);
    assert!(out.stderr.contains("cannot use the current directory"), "{}", out.stderr);
    // Under /proc and /sys.
    for dir in ["/proc/self", "/sys/kernel"] {
        let mut cmd = kdf(Path::new(dir));
        cmd.env("XDG_RUNTIME_DIR", &m.runtime).args(["run", "--", "true"]);
        let out = run_with(cmd, None);
        assert_eq!(out.status, 125, "{dir}");
        assert!(out.stderr.contains("it is in a kernel filesystem"), "{dir}: {}", out.stderr);
    }
}

#[test]
fn a_full_cache_disk_is_named() {
    let m = Marked::new();
    let cache = m.cwd().join("tiny-cache");
    std::fs::create_dir(&cache).unwrap();
    // A 64 KiB tmpfs as the cache, in a private mount namespace (unshare -rm
    // works unprivileged where user namespaces do).
    let script = format!(
        "mount -t tmpfs -o size=64k none '{c}' && XDG_CACHE_HOME='{c}' exec \"$@\"",
        c = cache.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-rm", "sh", "-c", &script, "sh"]).arg(kdf_bin()).args(["run", "--", "true"]);
    cmd.current_dir(m.cwd()).env("KDF_INIT", kdf_init()).env("XDG_RUNTIME_DIR", &m.runtime);
    let out = run_with(cmd, None);
    assert_eq!(out.status, 125, "{}", out.stderr);
    assert!(out.stderr.contains("is the disk full?"), "{}", out.stderr);
}

// ---- (5) Security and (6) data ----

#[test]
fn the_guest_cannot_write_the_host_root_or_unshared_paths() {
    let m = Marked::new();
    let outside = tempfile::tempdir().unwrap();
    let script = format!(
        "for f in /etc/kdf-x /usr/kdf-x '{}/x'; do touch \"$f\" 2>/dev/null && echo wrote $f; done; echo done",
        outside.path().display()
    );
    let out = m.run(&["--", "sh", "-c", &script]);
    assert_eq!(ok(out), "done\n");
    assert!(!outside.path().join("x").exists());
}

#[test]
fn ten_thousand_files_written_in_the_cwd_arrive_whole() {
    let m = Marked::new();
    let out = m.run(&[
        "--",
        "sh",
        "-c",
        "mkdir many && cd many && i=0; while [ $i -lt 10000 ]; do echo $i > f$i; i=$((i+1)); done",
    ]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let dir = m.cwd().join("many");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 10000);
    for i in [0, 4321, 9999] {
        assert_eq!(std::fs::read_to_string(dir.join(format!("f{i}"))).unwrap(), format!("{i}\n"));
    }
    m.assert_clean();
}

#[test]
fn ro_of_the_working_directory_makes_it_read_only() {
    let m = Marked::new();
    let out = m.run(&["--ro", ".", "--", "sh", "-c", "touch x 2>/dev/null && echo wrote; echo done"]);
    assert_eq!(ok(out), "done\n");
    assert!(!m.cwd().join("x").exists());
}

#[test]
fn rw_of_the_root_keeps_the_guests_own_tmp() {
    let m = Marked::new();
    let script =
        "stat -f -c %T /tmp /run; awk '$2 == \"/\" { print $4 }' /proc/mounts | tail -n 1 | cut -d, -f1";
    let out = m.run(&["--rw", "/", "--", "sh", "-c", script]);
    assert_eq!(ok(out), "tmpfs\ntmpfs\nrw\n", "the guest's /tmp and /run are its own, the root writable");
}

#[test]
fn a_mount_point_on_a_read_only_share_is_refused_before_boot() {
    let m = Marked::new();
    let share = m.cwd().join("share");
    std::fs::create_dir(&share).unwrap();
    let spec = format!("src={},dst=/nonexistent-kdf-dir/x", share.display());
    let out = m.run(&["--virtiofs", &spec, "--", "true"]);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(out.stderr.contains("is on a read-only share"), "{}", out.stderr);
    assert!(out.stderr.contains("kdf: hint: use a dst under /tmp, /run, the cwd"), "{}", out.stderr);
    assert!(out.took < Duration::from_secs(10), "refused before any boot: {:?}", out.took);
    // Under the guest's own /tmp it is created.
    let spec = format!("src={},dst=/tmp/new/x", share.display());
    assert_eq!(ok(m.run(&["--virtiofs", &spec, "--", "sh", "-c", "test -d /tmp/new/x && echo ok"])), "ok\n");
}

/// Runs `kdf run ARGS` in a chroot whose root is a plain directory (no mount
/// point, as in a debootstrap'd root), with the host's directories bound in
/// (/tmp too: the workspace, and so kdf, may live there).
fn in_chroot(m: &Marked, args: &[&str]) -> Out {
    let root = m.cwd().join("chroot");
    std::fs::create_dir(&root).unwrap();
    let script = r#"
        set -e
        R=$1; shift
        mount --make-rprivate /
        for d in /*; do
            n=${d#/}
            case $n in proc|sys|dev|run) continue ;; esac
            if [ -L "$d" ]; then cp -P "$d" "$R/$n"; continue; fi
            [ -d "$d" ] || continue
            mkdir "$R/$n"
            mount --rbind "$d" "$R/$n"
        done
        mkdir "$R/proc" "$R/sys" "$R/dev" "$R/run"
        mount -t proc proc "$R/proc"
        mount --rbind /sys "$R/sys"
        mount --rbind /dev "$R/dev"
        mount -t tmpfs tmpfs "$R/run"
        exec chroot "$R" "$@"
    "#;
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c", script, "sh"]).arg(&root).arg(kdf_bin()).arg("run").args(args);
    cmd.env("XDG_CACHE_HOME", cache_dir())
        .env("XDG_RUNTIME_DIR", runtime_dir())
        .env("KDF_INIT", kdf_init())
        .env("KDF_TEST_MARKER", m.marker());
    run_with(cmd, None)
}

#[test]
fn in_a_chroot_whose_root_is_no_mount_point_virtiofs_still_works() {
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("skipped: building a chroot needs root (CI runs as root)");
        return;
    }
    let m = Marked::new();
    let out = in_chroot(&m, &["-v", "--", "sh", "-c", "echo in-chroot; exit 3"]);
    assert_eq!(out.status, 3, "{}", out.stderr);
    assert_eq!(out.stdout_str(), "in-chroot\n");
    assert!(out.stderr.contains("using --sandbox chroot"), "-v says which sandbox: {}", out.stderr);
    m.assert_clean();
}
