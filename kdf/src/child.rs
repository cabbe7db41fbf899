//! Child processes (QEMU, virtiofsd) owned by a guard: in their own process
//! group (a terminal's Ctrl-C reaches kdf, which decides), killed with kdf
//! (`PR_SET_PDEATHSIG`), killed and reaped when the guard drops, and with the
//! tail of their stderr kept for error messages.

use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::ring::LineRing;

const TAIL_LINES: usize = 40;
/// How long an exited child's stderr reader gets to take its last lines.
const STDERR_END: Duration = Duration::from_millis(500);

/// Descriptors handed to a child are numbered below this.
pub const FIRST_SPARE_FD: RawFd = 128;

/// Called with each stderr line (e.g. to spot "KVM internal error").
pub type LineHook = Box<dyn Fn(&str) + Send>;

#[derive(Debug)]
pub struct Guard {
    child: Child,
    status: Option<ExitStatus>,
    tail: Arc<Mutex<LineRing>>,
    /// Reads its stderr into `tail` until the pipe ends.
    reader: JoinHandle<()>,
}

impl Guard {
    /// Spawns `cmd` from the calling thread (the death signal follows the
    /// thread that forked: spawn from the main thread). `fds` are
    /// `(descriptor, number)` pairs: the child gets each descriptor under that
    /// number (3 and up, below [`FIRST_SPARE_FD`]), so its command line can name
    /// fixed numbers that `--dry-run` prints too.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        fds: &[(BorrowedFd, RawFd)],
        hook: Option<LineHook>,
    ) -> Result<Guard> {
        // Copies above every target first, so no dup2 overwrites a source.
        let mut moves = Vec::with_capacity(fds.len());
        for (fd, target) in fds {
            assert!((3..FIRST_SPARE_FD).contains(target), "fd target {target} out of range");
            let spare =
                nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(FIRST_SPARE_FD))
                    .context("failed to duplicate a descriptor")?;
            // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
            moves.push((unsafe { OwnedFd::from_raw_fd(spare) }, *target));
        }
        let raw: Vec<(RawFd, RawFd)> = moves.iter().map(|(fd, t)| (fd.as_raw_fd(), *t)).collect();
        let parent = std::process::id() as libc::pid_t;
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).process_group(0);
        // SAFETY: between fork and exec the closure only makes async-signal-safe
        // calls (prctl, getppid, dup2) on a pre-built vector.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // kdf may have died between fork and prctl (the child was
                // re-parented, to init or a subreaper): then die now.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                // dup2 leaves the copy without FD_CLOEXEC: it survives exec.
                for &(spare, target) in &raw {
                    if libc::dup2(spare, target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().with_context(|| format!("failed to start {name}"))?;
        let tail = Arc::new(Mutex::new(LineRing::new(TAIL_LINES)));
        let stderr = child.stderr.take().expect("stderr is piped");
        let keep_tail = Arc::clone(&tail);
        let reader = std::thread::Builder::new()
            .name(format!("{name}-stderr"))
            .spawn(move || {
                for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
                    let line = String::from_utf8_lossy(&line).into_owned();
                    if let Some(hook) = &hook {
                        hook(&line);
                    }
                    keep_tail.lock().unwrap().push(line);
                }
            })
            .context("failed to start a thread")?;
        Ok(Guard { child, status: None, tail, reader })
    }

    #[cfg(test)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if it has exited (reaps it).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `limit` for it to exit (reaping it).
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            if start.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The last lines it wrote to stderr; once it has exited, all of them:
    /// its exit is seen before its reader has taken what it wrote last (a
    /// QEMU error that tells kdf not to blame KVM), so the reader gets up to
    /// [`STDERR_END`] to reach the pipe's end.
    pub fn stderr_tail(&self) -> String {
        let start = Instant::now();
        while self.status.is_some() && !self.reader.is_finished() && start.elapsed() < STDERR_END {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.tail.lock().unwrap().lines().join("\n")
    }

    /// SIGKILL to its whole process group, then reap; idempotent.
    pub fn kill(&mut self) {
        if self.try_wait().is_none() {
            let group = nix::unistd::Pid::from_raw(self.child.id() as libc::pid_t);
            if nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL).is_err() {
                let _ = self.child.kill();
            }
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_the_guard_kills_and_reaps() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let g = Guard::spawn("sleep", cmd, &[], None).unwrap();
        let pid = g.pid() as i32;
        drop(g);
        // SAFETY: kill with signal 0 only checks whether the pid exists.
        assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "process {pid} is gone");
    }

    #[test]
    fn stderr_tail_and_hook_see_the_lines() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo one >&2; echo two >&2"]);
        let mut g =
            Guard::spawn("sh", cmd, &[], Some(Box::new(move |l| s.lock().unwrap().push(l.to_string()))))
                .unwrap();
        let start = Instant::now();
        while g.try_wait().is_none() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(g.stderr_tail(), "one\ntwo");
        assert_eq!(*seen.lock().unwrap(), ["one", "two"]);
    }

    #[test]
    fn after_its_exit_the_stderr_tail_is_complete() {
        // A slow reader (a hook that takes its time, as a loaded machine
        // does) is still behind when the exit is seen.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo -append: bad option >&2; exit 1"]);
        let hook = Box::new(|_: &str| std::thread::sleep(Duration::from_millis(300)));
        let mut g = Guard::spawn("sh", cmd, &[], Some(hook)).unwrap();
        assert!(g.wait_for(Duration::from_secs(5)).is_some(), "sh exited");
        assert_eq!(g.stderr_tail(), "-append: bad option");
    }

    #[test]
    fn the_stderr_tail_of_a_running_child_waits_for_nothing() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let g = Guard::spawn("sleep", cmd, &[], None).unwrap();
        let start = Instant::now();
        assert_eq!(g.stderr_tail(), "");
        assert!(start.elapsed() < STDERR_END);
    }
}
