//! A channel to kdf: a virtio-serial port carrying framed messages both
//! ways. The run's is named [`kdf_proto::PORT_NAME`], `kdf attach`'s
//! [`kdf_proto::ATTACH_PORT_NAME`].

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kdf_proto::{FrameBuffer, Plan, ToGuest, ToHost, PORT_NAME, PROTOCOL_VERSION};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::log::{say, Fatal};

/// How long the port may take to appear after virtio_console loaded: ports are
/// announced asynchronously by the device, so this is a bounded retry.
const APPEAR_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Port {
    file: File,
    /// The same channel for writing, shared with the kernel log follower: a
    /// frame is written whole under the lock, so frames never interleave.
    out: Writer,
    inbox: FrameBuffer,
    /// The host closed its end: stop polling, drop what would be sent.
    closed: bool,
}

impl Port {
    /// A port over an open channel: the device node, or a socket in tests.
    pub fn new(file: File) -> Port {
        let out = Writer(Arc::new(Mutex::new(file.try_clone().expect("dup the channel"))));
        Port { file, out, inbox: FrameBuffer::default(), closed: false }
    }

    /// A handle that sends frames from another thread.
    pub fn writer(&self) -> Writer {
        self.out.clone()
    }

    /// Waits for the run's port and opens it.
    pub fn open() -> Result<Port, Fatal> {
        Port::open_named(PORT_NAME)
    }

    /// Waits for the device node of the port called `name` and opens it.
    pub fn open_named(name: &str) -> Result<Port, Fatal> {
        let start = Instant::now();
        loop {
            if let Some(dev) = find(name)? {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&dev)
                    .map_err(|e| Fatal(format!("cannot open {dev}: {e}")))?;
                return Ok(Port::new(file));
            }
            if start.elapsed() > APPEAR_TIMEOUT {
                return Err(Fatal(format!(
                    "no virtio-serial port named {name} after {APPEAR_TIMEOUT:?} \
                     (is the kernel missing CONFIG_VIRTIO_CONSOLE?)"
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Says hello and waits for the plan.
    pub fn handshake(&mut self, release: &str) -> Result<Plan, Fatal> {
        self.send(&ToHost::Hello { version: PROTOCOL_VERSION, release: release.to_string() });
        loop {
            match self.recv()? {
                ToGuest::Plan(plan) => return Ok(*plan),
                other => say(&format!("warning: ignoring {other:?} before the plan")),
            }
        }
    }

    /// The next message, waiting for it; an error once the host hung up.
    pub fn recv(&mut self) -> Result<ToGuest, Fatal> {
        loop {
            if let Some(msg) = self.next_message()? {
                return Ok(msg);
            }
            let mut buf = [0u8; 64 << 10];
            match self.file.read(&mut buf) {
                Ok(0) => return Err(Fatal("the host closed the channel".into())),
                Ok(n) => self.inbox.extend(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Fatal(format!("cannot read the channel: {e}"))),
            }
        }
    }

    /// A decoded message if a whole frame is buffered.
    pub fn next_message(&mut self) -> Result<Option<ToGuest>, Fatal> {
        let Some((tag, payload)) = self.inbox.next_frame().map_err(|e| Fatal(e.to_string()))? else {
            return Ok(None);
        };
        ToGuest::decode(tag, &payload)
            .map(Some)
            .map_err(|e| Fatal(format!("{e} (are kdf and kdf-init from the same build?)")))
    }

    /// Reads what the port has (call when poll says it is readable).
    pub fn fill(&mut self) {
        let mut buf = [0u8; 64 << 10];
        match self.file.read(&mut buf) {
            Ok(0) => self.closed = true,
            Ok(n) => self.inbox.extend(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                say(&format!("warning: channel read failed: {e}"));
                self.closed = true;
            }
        }
    }

    pub fn is_open(&self) -> bool {
        !self.closed
    }

    /// Sends one message; a broken channel is reported once and then ignored,
    /// because init must still reap, sync and stop the VM.
    pub fn send(&mut self, msg: &ToHost) {
        if self.closed {
            return;
        }
        if let Err(e) = self.out.send(msg) {
            say(&format!("warning: channel write failed: {e}"));
            self.closed = true;
        }
    }

    /// Waits until the host acknowledges the `Exit` or `Failed` just sent (it
    /// then has everything sent before it), the host hangs up, or `limit`
    /// passes. A virtio-serial write returns once the frame is queued: ending
    /// the VM before the host has it would lose the command's last output.
    /// Returns whether the acknowledgement came.
    pub fn await_ack(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            match self.next_message() {
                Ok(Some(ToGuest::Ack)) => return true,
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => {
                    say(&format!("warning: {e}"));
                    return false;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if self.closed || left.is_zero() {
                return false;
            }
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => {}
                Ok(_) => self.fill(),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    say(&format!("warning: poll failed: {e}"));
                    return false;
                }
            }
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Sends whole frames on the channel, from any thread.
#[derive(Debug, Clone)]
pub struct Writer(Arc<Mutex<File>>);

impl Writer {
    pub fn send(&self, msg: &ToHost) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write_all(&msg.encode())
    }
}

/// The `/dev` node of the port called `port`, if it exists yet.
fn find(port: &str) -> Result<Option<String>, Fatal> {
    let entries = match std::fs::read_dir("/sys/class/virtio-ports") {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Fatal(format!("cannot list /sys/class/virtio-ports: {e}"))),
    };
    for entry in entries.flatten() {
        let name = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        if name.trim_end() == port {
            let dev = format!("/dev/{}", entry.file_name().to_string_lossy());
            // devtmpfs creates the node a moment after sysfs shows the port.
            if std::path::Path::new(&dev).exists() {
                return Ok(Some(dev));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use kdf_proto::ToGuest;

    use crate::testing::{channel, plan};

    use super::*;

    #[test]
    fn the_handshake_says_hello_and_skips_messages_before_the_plan() {
        let (mut port, mut host) = channel();
        host.send(&ToGuest::Signal(2));
        host.send(&ToGuest::Plan(Box::new(plan(&["true"]))));
        assert_eq!(port.handshake("6.1.0").unwrap(), plan(&["true"]));
        assert_eq!(host.received(), [ToHost::Hello { version: PROTOCOL_VERSION, release: "6.1.0".into() }]);
    }

    #[test]
    fn the_handshake_fails_when_the_host_hangs_up_before_the_plan() {
        let (mut port, host) = channel();
        drop(host);
        let err = port.handshake("6.1.0").unwrap_err();
        assert_eq!(err.to_string(), "the host closed the channel");
    }

    #[test]
    fn an_unknown_message_is_blamed_on_mismatched_builds() {
        let (mut port, mut host) = channel();
        host.send_raw(&[0, 0, 0, 0, 99]);
        port.fill();
        let err = port.next_message().unwrap_err();
        assert!(err.to_string().contains("same build"), "{err}");
    }

    #[test]
    fn a_hangup_closes_the_port() {
        let (mut port, host) = channel();
        drop(host);
        assert!(port.is_open());
        port.fill();
        assert!(!port.is_open());
    }

    #[test]
    fn the_ack_ends_the_wait_and_other_messages_are_skipped() {
        let (mut port, mut host) = channel();
        host.send(&ToGuest::Stdin(b"late".to_vec()));
        host.send(&ToGuest::Ack);
        let start = Instant::now();
        assert!(port.await_ack(Duration::from_secs(10)));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_hangup_ends_the_wait_for_the_ack() {
        let (mut port, host) = channel();
        drop(host);
        let start = Instant::now();
        assert!(!port.await_ack(Duration::from_secs(10)));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn without_an_ack_the_wait_ends_at_the_limit() {
        let (mut port, _host) = channel();
        let start = Instant::now();
        assert!(!port.await_ack(Duration::from_millis(200)));
        assert!(start.elapsed() >= Duration::from_millis(200));
    }
}
