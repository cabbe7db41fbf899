//! Test doubles for kdf-init's host unit tests: the host's end of the channel
//! (a socketpair), pipes standing in for a command's streams, and the lock
//! that tests starting processes hold (init reaps any child).

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard};

use kdf_proto::{Exec, FrameBuffer, Plan, ToGuest, ToHost, PROTOCOL_VERSION};
use nix::fcntl::{fcntl, FcntlArg, OFlag};

use crate::port::Port;

/// `argv` in `/` with a `PATH`, no stdin and no terminal.
pub fn exec(argv: &[&str]) -> Exec {
    Exec {
        argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
        program: None,
        env: vec![(b"PATH".to_vec(), b"/usr/bin:/bin".to_vec())],
        cwd: b"/".to_vec(),
        user: None,
        tty: None,
        stdin: false,
    }
}

/// A plan that runs [`exec`]`(argv)`.
pub fn plan(argv: &[&str]) -> Plan {
    Plan {
        version: PROTOCOL_VERSION,
        command: exec(argv),
        shares: Vec::new(),
        modules: Vec::new(),
        hostname: "kdf".into(),
        clock_ns: 0,
        user_modules: Vec::new(),
        unload: true,
        kmsg: false,
        network: None,
    }
}

/// kdf's side of the channel.
#[derive(Debug)]
pub struct Host {
    stream: UnixStream,
    inbox: FrameBuffer,
}

/// A connected port and the host's end of it.
pub fn channel() -> (Port, Host) {
    let (guest, host) = UnixStream::pair().expect("socketpair");
    let port = Port::new(File::from(OwnedFd::from(guest)));
    (port, Host { stream: host, inbox: FrameBuffer::default() })
}

impl Host {
    pub fn send(&mut self, msg: &ToGuest) {
        self.send_raw(&msg.encode());
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send to the guest");
    }

    /// A second handle, to send from one thread while another receives.
    pub fn try_clone(&self) -> Host {
        Host { stream: self.stream.try_clone().expect("dup"), inbox: FrameBuffer::default() }
    }

    /// What the guest has sent so far: its sends are synchronous, so every
    /// frame it wrote is already in the socket.
    pub fn received(&mut self) -> Vec<ToHost> {
        self.stream.set_nonblocking(true).expect("nonblocking");
        let mut got = Vec::new();
        loop {
            self.take_frames(&mut got);
            match self.read_some() {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("host read: {e}"),
            }
        }
        self.take_frames(&mut got);
        self.stream.set_nonblocking(false).expect("blocking");
        got
    }

    /// The next message, waiting for it; `None` once the guest hung up.
    pub fn recv(&mut self) -> Option<ToHost> {
        loop {
            if let Some((tag, payload)) = self.inbox.next_frame().expect("frame") {
                return Some(ToHost::decode(tag, &payload).expect("guest message"));
            }
            if self.read_some().expect("host read") == 0 {
                return None;
            }
        }
    }

    /// Everything the guest sends until it closes the channel.
    pub fn until_closed(mut self) -> Vec<ToHost> {
        std::iter::from_fn(|| self.recv()).collect()
    }

    fn read_some(&mut self) -> std::io::Result<usize> {
        let mut buf = [0u8; 64 << 10];
        let n = self.stream.read(&mut buf)?;
        self.inbox.extend(&buf[..n]);
        Ok(n)
    }

    fn take_frames(&mut self, into: &mut Vec<ToHost>) {
        while let Some((tag, payload)) = self.inbox.next_frame().expect("frame") {
            into.push(ToHost::decode(tag, &payload).expect("guest message"));
        }
    }
}

/// The concatenated payloads of `Stdout` (or `Stderr`) messages.
pub fn output(msgs: &[ToHost], stderr: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for msg in msgs {
        match msg {
            ToHost::Stdout(data) if !stderr => out.extend_from_slice(data),
            ToHost::Stderr(data) if stderr => out.extend_from_slice(data),
            _ => {}
        }
    }
    out
}

/// The sum of the `StdinCredit` messages.
pub fn credit(msgs: &[ToHost]) -> u64 {
    msgs.iter().map(|m| if let ToHost::StdinCredit(n) = m { u64::from(*n) } else { 0 }).sum()
}

/// A pipe for the command's stdout or stderr: `(init's read end, the
/// command's write end)`, init's end non-blocking as `command::spawn` leaves it.
pub fn output_pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = pipe();
    set_nonblocking(&r);
    (r, w)
}

/// A pipe for the command's stdin: `(init's write end, the command's read end)`.
pub fn input_pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = pipe();
    set_nonblocking(&w);
    (w, r)
}

/// Close-on-exec, so a process another test starts cannot hold it open.
fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe")
}

pub fn set_nonblocking(fd: &OwnedFd) {
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("O_NONBLOCK");
}

static PROCESSES: Mutex<()> = Mutex::new(());

/// Held by every test that starts a process: the relay reaps any child
/// (`waitpid(-1)`), which would steal another test's.
pub fn processes() -> MutexGuard<'static, ()> {
    PROCESSES.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
