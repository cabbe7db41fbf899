//! `kdf attach` and `kdf sysrq` against a running `kdf run` in the same
//! directory (kdf's fast test kernel, under TCG): a second command's exact
//! streams and status, an interactive shell on a pty, SysRq output on the
//! run's console, a stuck client, and the errors for no run and two runs.
//! The first run waits for a file `stop` in its directory, so each test
//! ends it when it is done.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::kernel::build;
use common::*;
use nix::sys::termios::tcgetattr;

/// The first run's command: says `ready`, then waits for `stop`.
const WAIT_FOR_STOP: &str = "echo ready; while [ ! -e stop ]; do sleep 0.1; done; echo first-done; exit 3";

/// A `kdf run` in the background, its stdout read line by line; killed
/// (with its VM) if a test fails before it stops it.
struct FirstRun {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl FirstRun {
    fn start(dir: &Path, extra: &[&str], script: &str) -> FirstRun {
        let mut cmd = kdf(dir);
        cmd.args(["run", "--accel", "tcg", "--kernel"]).arg(build()).args(extra);
        cmd.args(["--", "sh", "-c", script]);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kdf run");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut run = FirstRun { child: Some(child), lines, seen: Vec::new() };
        run.expect("ready");
        run
    }

    /// Waits for a line of the run's stdout.
    fn expect(&mut self, line: &str) {
        let start = Instant::now();
        while !self.seen.iter().any(|l| l == line) {
            match self.lines.recv_timeout(Duration::from_secs(1)) {
                Ok(l) => self.seen.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let mut err = String::new();
                    let stderr = self.child.as_mut().and_then(|c| c.stderr.as_mut());
                    let _ = stderr.map(|e| e.read_to_string(&mut err));
                    panic!("the run ended before {line:?}: {:?}\n{err}", self.seen);
                }
            }
            assert!(start.elapsed() < LIMIT, "no {line:?} from the run: {:?}", self.seen);
        }
    }

    /// Creates `stop` and waits for the run: its status, stdout and stderr.
    fn stop(mut self, dir: &Path) -> (i32, Vec<String>, String) {
        std::fs::write(dir.join("stop"), "").unwrap();
        let mut child = self.child.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let out = wait(child);
        let mut stderr = String::new();
        err.read_to_string(&mut stderr).unwrap();
        self.seen.extend(self.lines.iter());
        (out.status, std::mem::take(&mut self.seen), stderr)
    }
}

impl Drop for FirstRun {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `kdf attach ARGS` in `dir`, with `stdin` (or none).
fn attach(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Out {
    let mut cmd = kdf(dir);
    cmd.arg("attach").args(args);
    run_with(cmd, stdin.map(<[u8]>::to_vec))
}

fn assert_first_run_unaffected(dir: &Path, run: FirstRun) {
    let (status, stdout, stderr) = run.stop(dir);
    assert_eq!(status, 3, "{stderr}");
    assert_eq!(stdout, ["ready", "first-done"]);
    let notice = |l: &&str| l.starts_with("kdf: KVM cannot boot Linux on this machine");
    assert!(stderr.lines().all(|l| notice(&l)), "the run's stderr is the command's: {stderr}");
}

#[test]
fn attach_runs_a_second_command_beside_the_run_and_leaves_it_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let run = FirstRun::start(dir.path(), &[], WAIT_FOR_STOP);

    let out = attach(dir.path(), &["--", "cat", "/proc/uptime"], None);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let uptime = out.stdout_str();
    let fields: Vec<f64> = uptime.split_whitespace().map(|f| f.parse().unwrap()).collect();
    assert!(fields.len() == 2 && fields[0] > 0.0 && uptime.ends_with('\n'), "{uptime:?}");
    assert_eq!(out.command_stderr(), "");

    let out = attach(dir.path(), &["--", "sh", "-c", "printf 'o\\0ut'; printf err >&2; exit 7"], None);
    assert_eq!((out.status, &out.stdout[..], out.command_stderr().as_str()), (7, &b"o\0ut"[..], "err"));

    // stdin, the environment and the directory are kdf attach's.
    std::fs::write(dir.path().join("here"), "a file").unwrap();
    let script = "cat; echo \" $KDF_T $(cat here)\"";
    let out = attach(dir.path(), &["-e", "KDF_T=x", "--", "sh", "-c", script], Some(b"typed"));
    assert_eq!((out.status, out.stdout_str().as_str()), (0, "typed x a file\n"), "{}", out.stderr);

    let out = attach(dir.path(), &["--", "/nonexistent/kdf-cmd"], None);
    assert_eq!(out.status, 127, "{}", out.stderr);
    assert!(out.stderr.contains("kdf: /nonexistent/kdf-cmd: command not found"), "{}", out.stderr);

    assert_first_run_unaffected(dir.path(), run);
    let out = attach(dir.path(), &["--", "true"], None);
    assert_eq!(out.status, 125, "the run is over: {}", out.stderr);
}

#[test]
fn attach_on_a_terminal_runs_an_interactive_shell_with_job_control() {
    let dir = tempfile::tempdir().unwrap();
    let run = FirstRun::start(dir.path(), &[], WAIT_FOR_STOP);
    let mut cmd = kdf(dir.path());
    cmd.args(["attach", "-s", "/bin/sh"]);
    let mut s = common::pty::start(cmd);
    let before = tcgetattr(&s.slave).unwrap();
    let mut at = s.expect(0, "attached to the VM of kdf run pid");
    s.type_("stty size; tty\r");
    at = s.expect(at, "30 100");
    at = s.expect(at, "/dev/pts/");
    common::pty::resize_interrupt_and_exit(s, at, before.local_flags);

    // Enter ~ . leaves a session whose command would never end; the command
    // is hung up, so the next session may start.
    let mut cmd = kdf(dir.path());
    cmd.args(["attach", "--", "sh", "-c", "echo wedged; exec sleep 600"]);
    let mut s = common::pty::start(cmd);
    s.expect(0, "wedged");
    s.type_("\r~.");
    s.expect(0, "left the session");
    assert_eq!(s.wait().0, 125);
    let out = attach(dir.path(), &["--", "true"], None);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_first_run_unaffected(dir.path(), run);
}

#[test]
fn sysrq_w_shows_blocked_tasks_on_the_runs_console() {
    let dir = tempfile::tempdir().unwrap();
    let console = dir.path().join("console.log");
    // A task in D state: a vfork parent (posix_spawn) whose child blocks
    // opening a FIFO before it can exec. (Reading files over virtiofs puts
    // a task in D state too, briefly: wait for the child.)
    let blocked = "import os; os.mkfifo('/run/fifo'); os.posix_spawn('/bin/true', ['true'], os.environ, \
                   file_actions=[(os.POSIX_SPAWN_OPEN, 0, '/run/fifo', os.O_RDONLY, 0)])";
    let script = format!(
        r#"/usr/bin/python3 -c "{blocked}" & p=$!
           until grep -qs "^PPid:.$p\$" /proc/[0-9]*/status && grep -q 'State:.D' /proc/$p/status; do sleep 0.1; done
           {WAIT_FOR_STOP}"#
    );
    let run = FirstRun::start(dir.path(), &["--console-log", console.to_str().unwrap()], &script);
    let mut cmd = kdf(dir.path());
    cmd.args(["sysrq", "w"]);
    let out = run_with(cmd, None);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let answer = out.stdout_str();
    assert!(answer.contains("sysrq: Show Blocked State"), "{answer}");
    assert!(answer.contains("task:python3") && answer.contains("state:D"), "{answer}");
    let (status, _, stderr) = run.stop(dir.path());
    assert_eq!(status, 3, "{stderr}");
    let log = std::fs::read_to_string(&console).unwrap();
    assert!(log.contains("sysrq: Show Blocked State"), "{log}");
    assert!(log.contains("task:python3"), "the dump is on the console too:\n{log}");
}

#[test]
fn a_stuck_attach_client_neither_holds_up_the_run_nor_lets_a_second_session_in() {
    let dir = tempfile::tempdir().unwrap();
    let run = FirstRun::start(dir.path(), &[], WAIT_FOR_STOP);
    // Endless output into a pipe nobody reads: the client stops reading its
    // channel, and the session's output backs up into the guest.
    let mut cmd = kdf(dir.path());
    cmd.args(["attach", "--", "yes"]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut stuck = cmd.spawn().unwrap();
    std::thread::sleep(Duration::from_secs(2));

    let second = attach(dir.path(), &["--", "true"], None);
    assert_eq!(second.status, 125, "{}", second.stderr);
    let pid = stuck.id();
    assert!(second.stderr.contains(&format!("another kdf attach (pid {pid})")), "{}", second.stderr);

    assert_first_run_unaffected(dir.path(), run);
    // Its reader gone, the stuck client sees the VM's end and says so.
    drop(stuck.stdout.take());
    let out = wait(stuck);
    assert_eq!(out.status, 125, "{}", out.stderr);
    assert!(out.stderr.contains("the VM stopped before the command finished"), "{}", out.stderr);
}

#[test]
fn attach_and_sysrq_without_a_run_here_say_so() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["attach", "--", "true"][..], &["sysrq", "w"]] {
        let mut cmd = kdf(dir.path());
        cmd.args(args);
        let out = run_with(cmd, None);
        assert_eq!(out.status, 125, "{}", out.stderr);
        let here = dir.path().canonicalize().unwrap();
        assert!(out.stderr.contains(&format!("no kdf run started from {} is running", here.display())));
        assert!(out.stderr.contains("hint: start one here with `kdf run`"), "{}", out.stderr);
    }
}

#[test]
fn two_runs_from_one_directory_are_listed_for_a_choice() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let mut cmd = kdf(dir.path());
        cmd.args(["run", "--accel", "tcg", "--kernel"]).arg(build()).args(["--", "sleep", "120"]);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
    };
    let runs = [start(), start()];
    // Each run publishes its record before it boots.
    let started = Instant::now();
    loop {
        let mut ps = kdf(dir.path());
        ps.arg("ps");
        let listed = run_with(ps, None).stdout_str();
        if runs.iter().all(|r| listed.contains(&format!("pid {}", r.id()))) {
            break;
        }
        assert!(started.elapsed() < LIMIT, "both runs never showed in kdf ps: {listed}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = attach(dir.path(), &["--", "true"], None);
    for run in &runs {
        assert!(out.stderr.contains(&format!("pid {}", run.id())), "{}", out.stderr);
    }
    assert_eq!(out.status, 125, "{}", out.stderr);
    assert!(
        out.stderr.contains("2 kdf runs were started from") && out.stderr.contains("--pid"),
        "{}",
        out.stderr
    );
    for run in runs {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(run.id() as i32), nix::sys::signal::SIGTERM)
            .unwrap();
        wait(run);
    }
}
