//! Debugged runs for the `kdf gdb` tests: a `kdf run` in the background
//! that cannot outlive its test, `kdf gdb` in batch mode, and what the tests
//! read from their output.

use std::path::Path;
use std::process::{Child, Stdio};

use super::{kdf, run_with, wait, Out};

/// Each run may wait this long for its debugger, then ends (124): a test
/// that fails before it attaches leaves no VM behind.
const RUN_TIMEOUT: &str = "150";

/// A `kdf run` in the background, killed if the test ends before it does.
pub struct Running(Option<Child>);

impl Running {
    pub fn start(cwd: &Path, args: &[&str]) -> Running {
        let mut cmd = kdf(cwd);
        cmd.args(["run", "--timeout", RUN_TIMEOUT]).args(args);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        Running(Some(cmd.spawn().expect("spawn kdf run")))
    }

    pub fn still_running(&mut self) -> bool {
        self.0.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    pub fn terminate(&self) {
        let pid = self.0.as_ref().unwrap().id() as i32;
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }

    pub fn finish(mut self) -> Out {
        wait(self.0.take().unwrap())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `kdf gdb -- GDB-ARGS` in `cwd`.
pub fn gdb_in(cwd: &Path, gdb_args: &[&str]) -> Out {
    let mut cmd = kdf(cwd);
    cmd.args(["gdb", "--"]).args(gdb_args);
    run_with(cmd, None)
}

/// The 1-based number of the first line of `file` that contains `text`.
pub fn line_of(file: &Path, text: &str) -> usize {
    let source = std::fs::read_to_string(file).unwrap();
    source
        .lines()
        .position(|l| l.contains(text))
        .unwrap_or_else(|| panic!("no {text:?} in {}", file.display()))
        + 1
}

/// The port `kdf run -d` announced on stderr.
pub fn announced_port(stderr: &str) -> u16 {
    let at = stderr.find("gdb stub on 127.0.0.1:").unwrap_or_else(|| panic!("no port announced: {stderr}"));
    let rest = &stderr[at + "gdb stub on 127.0.0.1:".len()..];
    rest[..rest.find(':').unwrap()].parse().unwrap()
}

/// Runs `kdf gdb -batch` in `cwd` against a waiting run that loads
/// helloworld: `first` (a gdb command), a breakpoint in `helloworld_init`,
/// backtrace, `lx-lsmod`, `lx-dmesg`, then continue; checks that gdb stopped
/// at the `pr_info` line of `hello/helloworld.c` inside the module loader,
/// that the scripts saw the module, and that the run ended 0 with only the
/// stub's announcement on stderr. Returns gdb's stdout.
pub fn stops_in_helloworld_init(cwd: &Path, run: Running, hello: &Path, first: &str) -> String {
    let out = gdb_in(
        cwd,
        &[
            "-batch",
            "-ex",
            first,
            "-ex",
            "break helloworld_init",
            "-ex",
            "continue",
            "-ex",
            "bt",
            // Without it, `finish` steps off the breakpoint first, and a step
            // on a loaded host can land on it again (an interrupt taken and
            // returned from): the arm64 guest then stopped at line 28 twice
            // and had printed nothing yet.
            "-ex",
            "clear helloworld_init",
            "-ex",
            "finish",
            "-ex",
            "lx-lsmod",
            "-ex",
            "lx-dmesg",
            "-ex",
            "continue",
        ],
    );
    let run = run.finish();
    let text = out.stdout_str();
    let line = line_of(&hello.join("helloworld.c"), "pr_info(\"hello from");
    assert!(
        text.contains(&format!("#0  helloworld_init () at helloworld.c:{line}\n")),
        "bt:\n{text}\n{}",
        out.stderr
    );
    assert!(text.contains(" in do_init_module ("), "the module loader called it: {text}");
    assert!(text.lines().any(|l| l.contains(" helloworld ") && l.starts_with("0x")), "lx-lsmod: {text}");
    assert!(text.contains("helloworld: hello from kdf"), "lx-dmesg: {text}");
    assert!(!out.stderr.contains("Traceback"), "{}", out.stderr);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let port = announced_port(&run.stderr);
    assert_eq!(
        run.command_stderr(),
        format!("kdf: gdb stub on 127.0.0.1:{port}: attach with `kdf gdb` from this directory; the CPU waits for it to continue\n")
    );
    text
}
