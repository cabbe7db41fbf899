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

/// Reads frames until the stream ends. Runs on its own thread.
pub fn pump(mut stream: UnixStream, writer: Writer, credit: Credit, events: Sender<Event>) {
    let mut stdout_open = true;
    let result = loop {
        let (tag, payload) = match read_frame(&mut stream) {
            Ok(Some(frame)) => frame,
            Ok(None) => break None,
            Err(e) => break Some(format!("channel read failed: {e}")),
        };
        let msg = match ToHost::decode(tag, &payload) {
            Ok(msg) => msg,
            Err(e) => break Some(format!("{e} (are kdf and kdf-init from the same build?)")),
        };
        match msg {
            ToHost::Stdout(data) => {
                if stdout_open && !write_out(&mut std::io::stdout().lock(), &data) {
                    // Our reader is gone (`kdf run -- yes | head -1`): close the
                    // command's stdout so it gets SIGPIPE, as it would locally.
                    stdout_open = false;
                    writer.send(&ToGuest::StdoutClosed);
                }
            }
            ToHost::Stderr(data) => {
                write_out(&mut std::io::stderr().lock(), &data);
            }
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

/// Writes and flushes; false once the reader has gone away.
fn write_out(w: &mut impl Write, data: &[u8]) -> bool {
    match w.write_all(data).and_then(|()| w.flush()) {
        Ok(()) => true,
        Err(e) => e.kind() != ErrorKind::BrokenPipe,
    }
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
        let t = std::thread::spawn(move || pump(host, writer, c, tx));
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
}
