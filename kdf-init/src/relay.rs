//! Phase two's loop: relay the command's output to the host and the host's
//! stdin, signals and window size to the command, and return when the command
//! itself has exited. A background process that still holds the output pipes
//! does not keep the VM alive. The run's command is waited for through
//! SIGCHLD, reaping every zombie; an attach session's through its pidfd
//! ([`Waiter`]).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use kdf_proto::{Outcome, ToGuest, ToHost, MAX_DATA};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::command::{set_winsize, Child};
use crate::log::say;
use crate::port::Port;
use crate::{reaper, sysrq};

/// Blocks SIGCHLD so it arrives through a signalfd; call before spawning so no
/// exit can be missed. (std resets the mask in the child.)
pub fn block_sigchld() -> SigSet {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    if let Err(e) = mask.thread_block() {
        say(&format!("warning: cannot block SIGCHLD: {e}"));
    }
    mask
}

#[derive(Debug)]
struct Relay<'a> {
    port: &'a mut Port,
    child: Child,
    /// Host stdin not yet written to the command.
    pending: Vec<u8>,
    stdin_eof: bool,
    /// The host hung up (an attach client went away).
    hung_up: bool,
}

/// How the relay learns that its command has exited; without a descriptor
/// it wakes up every 50 ms to look.
#[derive(Debug)]
pub enum Waiter {
    /// The run's command: SIGCHLD through a signalfd; every child is reaped.
    Sigchld(Option<SignalFd>),
    /// An attach session's command (kept by [`reaper::spawn_kept`]): its pidfd.
    Pidfd(Option<OwnedFd>),
}

impl Waiter {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Waiter::Sigchld(fd) => fd.as_ref().map(|f| f.as_fd()),
            Waiter::Pidfd(fd) => fd.as_ref().map(|f| f.as_fd()),
        }
    }

    /// Called when the descriptor is readable.
    fn clear(&self) {
        if let Waiter::Sigchld(Some(sigfd)) = self {
            while let Ok(Some(_)) = sigfd.read_signal() {}
        }
    }

    fn status(&self, pid: Pid) -> Option<WaitStatus> {
        match self {
            Waiter::Sigchld(_) => reaper::reap_all(pid),
            Waiter::Pidfd(_) => reaper::take(pid),
        }
    }
}

/// Relays the run's command until it exits.
pub fn run(port: &mut Port, child: Child, mask: &SigSet) -> Outcome {
    let sigfd = match SignalFd::with_flags(mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
        Ok(fd) => Some(fd),
        Err(e) => {
            say(&format!("warning: no signalfd ({e}); polling for the command's exit"));
            None
        }
    };
    until_exit(port, child, &Waiter::Sigchld(sigfd))
}

/// Relays an attach session's command until it exits or the host hangs up.
pub fn run_session(port: &mut Port, child: Child) -> Outcome {
    // SAFETY: pidfd_open takes a pid and flags; a descriptor it returns is new
    // and ours (Linux 5.3+; older kernels fail and the loop polls instead).
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.pid.as_raw(), 0) };
    // SAFETY: as above, a non-negative result is a descriptor nothing else owns.
    let pidfd = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) });
    until_exit(port, child, &Waiter::Pidfd(pidfd))
}

/// The loop itself.
fn until_exit(port: &mut Port, child: Child, waiter: &Waiter) -> Outcome {
    let pid = child.pid;
    let mut relay = Relay::new(port, child);
    // The port may have read frames past the request that started the
    // command (stdin typed at once); no poll would announce them.
    relay.handle_messages();
    let status = loop {
        if let Some(status) = waiter.status(pid) {
            break status;
        }
        if relay.hung_up {
            return relay.hang_up();
        }
        relay.poll_once(waiter);
    };
    relay.drain();
    match status {
        WaitStatus::Signaled(_, sig, _) => Outcome::Signaled(sig as i32),
        WaitStatus::Exited(_, code) => Outcome::Exited(code),
        other => Outcome::NotExecutable(format!("unexpected wait status {other:?}")),
    }
}

const IN: PollFlags = PollFlags::POLLIN;

impl<'a> Relay<'a> {
    fn new(port: &'a mut Port, child: Child) -> Self {
        Relay { port, child, pending: Vec::new(), stdin_eof: false, hung_up: false }
    }

    /// The client is gone: the command's process group gets what a closed
    /// terminal gives it (SIGHUP, and SIGCONT should it be stopped), its
    /// streams close, and whatever survives (`nohup`) runs on unwatched.
    fn hang_up(self) -> Outcome {
        let group = Pid::from_raw(-self.child.pid.as_raw());
        for sig in [Signal::SIGHUP, Signal::SIGCONT] {
            if kill(group, sig).is_err() {
                let _ = kill(self.child.pid, sig);
            }
        }
        reaper::forget(self.child.pid);
        Outcome::Signaled(Signal::SIGHUP as i32)
    }

    fn poll_once(&mut self, waiter: &Waiter) {
        let port_open = self.port.is_open();
        let want_write = !self.pending.is_empty() && self.child.input.is_some();
        // Slots: 0 waiter, 1 port, 2 out, 3 err, 4 input (absent ones skipped).
        let wanted = [
            (waiter.fd(), IN),
            (port_open.then(|| self.port.fd()), IN),
            (self.child.out.as_ref().map(|f| f.as_fd()), IN),
            (self.child.err.as_ref().map(|f| f.as_fd()), IN),
            (self.child.input.as_ref().filter(|_| want_write).map(|f| f.as_fd()), PollFlags::POLLOUT),
        ];
        let mut fds = Vec::with_capacity(5);
        let mut slots = [None; 5];
        for (slot, (fd, events)) in wanted.into_iter().enumerate() {
            if let Some(fd) = fd {
                slots[slot] = Some(fds.len());
                fds.push(PollFd::new(fd, events));
            }
        }
        // Without a descriptor to wait on, wake up regularly to reap.
        let timeout = if waiter.fd().is_some() { PollTimeout::NONE } else { PollTimeout::from(50u8) };
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => return,
            Err(e) => {
                say(&format!("warning: poll failed: {e}"));
                std::thread::sleep(std::time::Duration::from_millis(10));
                return;
            }
        }
        let ready: Vec<bool> = slots
            .iter()
            .map(|s| s.is_some_and(|i| fds[i].revents().is_some_and(|r| !r.is_empty())))
            .collect();
        drop(fds);
        if ready[0] {
            waiter.clear();
        }
        if ready[1] {
            self.port.fill();
            self.handle_messages();
        }
        if ready[2] {
            self.child.out = forward(&mut *self.port, self.child.out.take(), ToHost::Stdout);
        }
        if ready[3] {
            self.child.err = forward(&mut *self.port, self.child.err.take(), ToHost::Stderr);
        }
        if ready[4] {
            self.write_stdin();
        }
    }

    fn handle_messages(&mut self) {
        loop {
            match self.port.next_message() {
                Ok(Some(msg)) => self.handle(msg),
                Ok(None) => return,
                Err(e) => {
                    say(&format!("warning: {e}"));
                    return;
                }
            }
        }
    }

    fn handle(&mut self, msg: ToGuest) {
        match msg {
            ToGuest::Stdin(data) => {
                if self.child.input.is_some() {
                    self.pending.extend_from_slice(&data);
                } else {
                    // Nobody reads stdin: acknowledge so the host never stalls.
                    self.port.send(&ToHost::StdinCredit(data.len() as u32));
                }
            }
            ToGuest::StdinEof => self.stdin_eof = true,
            ToGuest::Signal(sig) => {
                let group = Pid::from_raw(-self.child.pid.as_raw());
                if let Ok(sig) = Signal::try_from(sig) {
                    if kill(group, sig).is_err() {
                        let _ = kill(self.child.pid, sig);
                    }
                }
            }
            ToGuest::Winsize(size) => {
                if let Some(master) = &self.child.pty {
                    set_winsize(master, size);
                }
            }
            ToGuest::StdoutClosed => {
                self.child.out = None;
            }
            // With a pty both streams are the master: closing it would also
            // end stdout, so only a pipe is closed.
            ToGuest::StderrClosed => {
                self.child.err = None;
            }
            ToGuest::Sysrq(key) => {
                let answer = sysrq::trigger(key);
                self.port.send(&answer);
            }
            ToGuest::Hangup => self.hung_up = true,
            ToGuest::Plan(_) => say("warning: ignoring a second plan"),
            ToGuest::Attach(_) => say("warning: ignoring an attach request during a session"),
            ToGuest::Ack => say("warning: ignoring an acknowledgement before the exit"),
        }
        self.close_stdin_if_done();
    }

    fn write_stdin(&mut self) {
        let Some(input) = &self.child.input else { return };
        match nix::unistd::write(input, &self.pending) {
            Ok(n) => {
                self.pending.drain(..n);
                self.port.send(&ToHost::StdinCredit(n as u32));
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(_) => {
                // The command closed its stdin: discard, and let the host go on.
                let n = self.pending.len() as u32;
                self.pending.clear();
                self.child.input = None;
                self.port.send(&ToHost::StdinCredit(n));
            }
        }
        self.close_stdin_if_done();
    }

    fn close_stdin_if_done(&mut self) {
        // A pty has no end of input: the master stays open for the output.
        if self.stdin_eof && self.pending.is_empty() && self.child.pty.is_none() {
            self.child.input = None;
        }
    }

    /// After the command exited: what is already in the pipes still goes to the
    /// host, but a background writer cannot keep us here.
    fn drain(&mut self) {
        for _ in 0..64 {
            let before = (self.child.out.is_some(), self.child.err.is_some());
            self.child.out = forward(&mut *self.port, self.child.out.take(), ToHost::Stdout);
            self.child.err = forward(&mut *self.port, self.child.err.take(), ToHost::Stderr);
            if before == (false, false) {
                return;
            }
            if !would_read(&self.child.out) && !would_read(&self.child.err) {
                return;
            }
        }
    }
}

fn would_read(fd: &Option<OwnedFd>) -> bool {
    let Some(fd) = fd else { return false };
    let mut fds = [PollFd::new(fd.as_fd(), IN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Reads one chunk from `fd` and sends it; `None` once the stream has ended.
fn forward(port: &mut Port, fd: Option<OwnedFd>, wrap: fn(Vec<u8>) -> ToHost) -> Option<OwnedFd> {
    let fd = fd?;
    let mut buf = vec![0u8; MAX_DATA];
    match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
        Ok(0) => None,
        Ok(n) => {
            buf.truncate(n);
            port.send(&wrap(buf));
            Some(fd)
        }
        Err(Errno::EAGAIN | Errno::EINTR) => Some(fd),
        // EIO: the pty's last slave closed.
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests;
