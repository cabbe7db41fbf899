//! kdf's end of the channel to kdf-init: a reader thread that writes the
//! command's output to stdout/stderr as it arrives (so it is all out before
//! the exit status is handled) and passes control messages on, a shared
//! writer, and the stdin credit that bounds what is in flight.

use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};

use kdf_proto::{read_frame, ToGuest, ToHost, STDIN_WINDOW};

use super::event::Event;

/// Sends whole frames; shared by the main loop and the stdin pump.
#[derive(Debug, Clone)]
pub struct Writer(Arc<Mutex<UnixStream>>);

impl Writer {
    pub fn new(stream: UnixStream) -> Self {
        Writer(Arc::new(Mutex::new(stream)))
    }

    /// A failed send means the VM is gone; the main loop notices that itself.
    pub fn send(&self, msg: &ToGuest) -> bool {
        self.0.lock().unwrap().write_all(&msg.encode()).is_ok()
    }
}

/// Bytes of stdin the guest can still take.
#[derive(Debug, Clone)]
pub struct Credit(Arc<(Mutex<u32>, Condvar)>);

impl Default for Credit {
    fn default() -> Self {
        Credit(Arc::new((Mutex::new(STDIN_WINDOW), Condvar::new())))
    }
}

impl Credit {
    pub fn add(&self, n: u32) {
        let (lock, cv) = &*self.0;
        *lock.lock().unwrap() += n;
        cv.notify_all();
    }

    /// Waits for some credit and takes up to `max` of it.
    pub fn take(&self, max: u32) -> u32 {
        let (lock, cv) = &*self.0;
        let mut avail = cv.wait_while(lock.lock().unwrap(), |a| *a == 0).unwrap();
        let n = (*avail).min(max);
        *avail -= n;
        n
    }
}

/// Where the command's output goes: kdf's stdout and stderr, written through
/// their descriptors directly (not std's locked handles, which the main
/// thread must never wait for while this thread is blocked on a stalled
/// reader).
pub struct Sinks {
    pub stdout: Box<dyn Write + Send>,
    pub stderr: Box<dyn Write + Send>,
}

impl std::fmt::Debug for Sinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sinks")
    }
}

impl Sinks {
    pub fn std() -> Self {
        Sinks { stdout: Box::new(RawOut(1)), stderr: Box::new(RawOut(2)) }
    }
}

/// An inherited descriptor that stays open.
#[derive(Debug)]
struct RawOut(i32);

impl Write for RawOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        crate::ui::raw_fd(self.0).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One output stream of the command on its way to kdf's.
struct Stream {
    name: &'static str,
    open: bool,
    closed: ToGuest,
}

impl Stream {
    /// Writes `data`; on a failure closes the command's stream (it gets
    /// SIGPIPE, as it would locally) and, unless the reader simply went away
    /// (EPIPE), reports the error: the run then fails.
    fn write(&mut self, out: &mut dyn Write, data: &[u8], writer: &Writer, events: &Sender<Event>) {
        if !self.open {
            return;
        }
        if let Err(e) = out.write_all(data).and_then(|()| out.flush()) {
            self.open = false;
            writer.send(&self.closed);
            if e.kind() != ErrorKind::BrokenPipe {
                let _ = events.send(Event::WriteFailed { stream: self.name, error: e.to_string() });
            }
        }
    }
}

/// Reads frames until the stream ends. Runs on its own thread.
pub fn pump(mut stream: UnixStream, writer: Writer, credit: Credit, events: Sender<Event>, mut sinks: Sinks) {
    let mut stdout = Stream { name: "stdout", open: true, closed: ToGuest::StdoutClosed };
    let mut stderr = Stream { name: "stderr", open: true, closed: ToGuest::StderrClosed };
    let result = loop {
        let (tag, payload) = match read_frame(&mut stream, kdf_proto::MAX_TO_HOST) {
            Ok(Some(frame)) => frame,
            Ok(None) => break None,
            Err(e) => break Some(format!("channel read failed: {e}")),
        };
        let msg = match ToHost::decode(tag, &payload) {
            Ok(msg) => msg,
            Err(e) => break Some(format!("{e} (are kdf and kdf-init from the same build?)")),
        };
        match msg {
            ToHost::Stdout(data) => stdout.write(&mut *sinks.stdout, &data, &writer, &events),
            ToHost::Stderr(data) => stderr.write(&mut *sinks.stderr, &data, &writer, &events),
            ToHost::StdinCredit(n) => credit.add(n),
            other => {
                if events.send(Event::Guest(other)).is_err() {
                    return;
                }
            }
        }
    };
    let _ = events.send(Event::Closed(result));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_is_bounded_and_refilled() {
        let c = Credit::default();
        assert_eq!(c.take(u32::MAX), STDIN_WINDOW);
        c.add(10);
        assert_eq!(c.take(4), 4);
        assert_eq!(c.take(100), 6);
    }

    #[test]
    fn control_messages_reach_the_main_loop_in_order() {
        let (mut guest, host) = UnixStream::pair().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = Writer::new(host.try_clone().unwrap());
        let credit = Credit::default();
        let c = credit.clone();
        let t = std::thread::spawn(move || pump(host, writer, c, tx, Sinks::std()));
        guest.write_all(&ToHost::Hello { version: 1, release: "r".into() }.encode()).unwrap();
        guest.write_all(&ToHost::StdinCredit(5).encode()).unwrap();
        guest.write_all(&ToHost::Exit(kdf_proto::Outcome::Exited(3)).encode()).unwrap();
        drop(guest);
        t.join().unwrap();
        let got: Vec<Event> = rx.iter().collect();
        assert!(matches!(got[0], Event::Guest(ToHost::Hello { .. })));
        assert!(matches!(got[1], Event::Guest(ToHost::Exit(kdf_proto::Outcome::Exited(3)))));
        assert!(matches!(got[2], Event::Closed(None)));
        assert_eq!(credit.take(u32::MAX), STDIN_WINDOW + 5);
    }

    /// A sink that fails every write with `error` (after `ok` good writes).
    struct Failing(std::io::ErrorKind, usize);

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.1 == 0 {
                return Err(self.0.into());
            }
            self.1 -= 1;
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs the pump over `frames` with these sinks; the events and what the
    /// pump sent back to the guest.
    fn pump_with(frames: &[ToHost], sinks: Sinks) -> (Vec<Event>, Vec<ToGuest>) {
        let (mut guest, host) = UnixStream::pair().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = Writer::new(host.try_clone().unwrap());
        let t = std::thread::spawn(move || pump(host, writer, Credit::default(), tx, sinks));
        for f in frames {
            guest.write_all(&f.encode()).unwrap();
        }
        guest.shutdown(std::net::Shutdown::Write).unwrap();
        t.join().unwrap();
        let mut back = Vec::new();
        while let Some((tag, payload)) = read_frame(&mut guest, kdf_proto::MAX_FRAME).unwrap() {
            back.push(ToGuest::decode(tag, &payload).unwrap());
        }
        (rx.iter().collect(), back)
    }

    #[test]
    fn a_write_error_closes_the_commands_stream_and_is_reported() {
        let sinks = Sinks {
            stdout: Box::new(Failing(std::io::ErrorKind::StorageFull, 0)),
            stderr: Box::new(Vec::new()),
        };
        let frames = [ToHost::Stdout(b"hi\n".to_vec()), ToHost::Stdout(b"more\n".to_vec())];
        let (events, back) = pump_with(&frames, sinks);
        assert_eq!(back, [ToGuest::StdoutClosed], "closed once");
        let failed: Vec<_> = events.iter().filter(|e| matches!(e, Event::WriteFailed { .. })).collect();
        assert_eq!(failed.len(), 1, "{events:?}");
        assert!(matches!(failed[0], Event::WriteFailed { stream: "stdout", .. }));
    }

    #[test]
    fn a_reader_that_went_away_closes_the_stream_without_an_error() {
        let sinks = Sinks {
            stdout: Box::new(Failing(std::io::ErrorKind::BrokenPipe, 1)),
            stderr: Box::new(Vec::new()),
        };
        let frames = [ToHost::Stdout(b"a".to_vec()), ToHost::Stdout(b"b".to_vec())];
        let (events, back) = pump_with(&frames, sinks);
        assert_eq!(back, [ToGuest::StdoutClosed]);
        assert!(!events.iter().any(|e| matches!(e, Event::WriteFailed { .. })), "{events:?}");
    }

    #[test]
    fn a_stderr_write_error_closes_the_commands_stderr() {
        let sinks =
            Sinks { stdout: Box::new(Vec::new()), stderr: Box::new(Failing(std::io::ErrorKind::Other, 0)) };
        let (events, back) = pump_with(&[ToHost::Stderr(b"x".to_vec())], sinks);
        assert_eq!(back, [ToGuest::StderrClosed]);
        assert!(events.iter().any(|e| matches!(e, Event::WriteFailed { stream: "stderr", .. })));
    }

    #[test]
    fn an_oversized_frame_from_the_guest_ends_the_channel() {
        let (mut guest, host) = UnixStream::pair().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = Writer::new(host.try_clone().unwrap());
        let t = std::thread::spawn(move || pump(host, writer, Credit::default(), tx, Sinks::std()));
        let len = (kdf_proto::MAX_TO_HOST as u32 + 1).to_le_bytes();
        guest.write_all(&[len[0], len[1], len[2], len[3], 3]).unwrap();
        t.join().unwrap();
        let events: Vec<Event> = rx.iter().collect();
        assert!(matches!(&events[..], [Event::Closed(Some(why))] if why.contains("exceeds")), "{events:?}");
    }
}
