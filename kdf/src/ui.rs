//! kdf's own lines on stderr: `kdf: ...` messages, written with `\r\n` while
//! the terminal is in raw mode (an interactive session), else `\n`; and the
//! size of a terminal.
//!
//! A line is written with a bounded attempt: when whatever reads kdf's stderr
//! stops reading (`kdf run ... 2>&1 | sleep 40`), waiting for it would hold up
//! `--timeout` and signals, so after [`PATIENCE`] the line is dropped.

use std::fs::File;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, FromRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// How long one of kdf's lines may wait for a reader that stopped reading.
pub const PATIENCE: Duration = Duration::from_secs(1);

static RAW: AtomicBool = AtomicBool::new(false);

/// Whether the terminal is raw (lines then end in `\r\n`).
pub fn set_raw(raw: bool) {
    RAW.store(raw, Ordering::SeqCst);
}

/// File descriptor `fd` as a `File` that is never closed.
pub fn raw_fd(fd: i32) -> ManuallyDrop<File> {
    // SAFETY: the descriptor stays open for the life of the process (stdin,
    // stdout or stderr), and ManuallyDrop never closes it.
    ManuallyDrop::new(unsafe { File::from_raw_fd(fd) })
}

/// Writes all of `data` to `fd`, waiting at most `limit` for it to become
/// writable; false if the data (or part of it) could not be written in time.
/// Small writes to a pipe that poll calls writable do not block.
pub fn write_bounded(fd: i32, data: &[u8], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut out = raw_fd(fd);
    let mut rest = data;
    while !rest.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(out.as_fd(), PollFlags::POLLOUT)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
        let chunk = &rest[..rest.len().min(512)];
        match out.write(chunk) {
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// kdf's stderr.
pub const STDERR: RawFd = 2;

/// One line on stderr, as it is.
pub fn line(text: &str) {
    line_on(STDERR, text);
}

/// One line on `fd` (stderr, or a pipe in a test): ended for the terminal's
/// mode, written with a bounded attempt.
pub fn line_on(fd: RawFd, text: &str) {
    write_bounded(fd, terminated(text, RAW.load(Ordering::SeqCst)).as_bytes(), PATIENCE);
}

/// `text` with the line ending a raw terminal needs (`\r\n`: without the
/// carriage return each line starts where the last one ended), else `\n`.
fn terminated(text: &str, raw: bool) -> String {
    format!("{text}{}", if raw { "\r\n" } else { "\n" })
}

/// A `kdf:` line on stderr.
pub fn say(msg: &str) {
    line(&format!("kdf: {msg}"));
}

/// The size of the terminal on `fd`, if it is one that knows its size (a
/// serial line reports 0x0 until someone runs `stty`).
pub fn window_size(fd: impl AsFd) -> Option<kdf_proto::Winsize> {
    let ws = rustix::termios::tcgetwinsize(fd).ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some(kdf_proto::Winsize { rows: ws.ws_row, cols: ws.ws_col })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_terminal_reports_its_size_and_a_file_none() {
        let set = nix::pty::Winsize { ws_row: 30, ws_col: 100, ws_xpixel: 0, ws_ypixel: 0 };
        let pty = nix::pty::openpty(&set, None).unwrap();
        assert_eq!(window_size(&pty.slave), Some(kdf_proto::Winsize { rows: 30, cols: 100 }));
        let blank = nix::pty::openpty(None, None).unwrap();
        assert_eq!(window_size(&blank.slave), None, "0x0 is no size");
        assert_eq!(window_size(tempfile::tempfile().unwrap()), None);
    }

    #[test]
    fn a_write_to_a_reader_that_stopped_gives_up_after_the_limit() {
        let (r, w) = nix::unistd::pipe().unwrap();
        // Fill the pipe: nobody reads `r`.
        nix::fcntl::fcntl(w.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))
            .unwrap();
        while nix::unistd::write(&w, &[0u8; 4096]).is_ok() {}
        nix::fcntl::fcntl(w.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty())).unwrap();
        let start = Instant::now();
        assert!(!write_bounded(w.as_raw_fd(), b"kdf: timed out\n", Duration::from_millis(200)));
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(150) && took < Duration::from_secs(5), "{took:?}");
        drop(r);
    }

    #[test]
    fn lines_end_in_crlf_only_in_a_raw_terminal() {
        assert_eq!(terminated("kdf: hi", false), "kdf: hi\n");
        assert_eq!(terminated("kdf: hi", true), "kdf: hi\r\n");
    }

    #[test]
    fn a_write_to_a_reader_that_reads_arrives_whole() {
        let (r, w) = nix::unistd::pipe().unwrap();
        assert!(write_bounded(w.as_raw_fd(), &[b'x'; 3000], Duration::from_secs(5)));
        let mut buf = vec![0u8; 4096];
        assert_eq!(nix::unistd::read(r.as_raw_fd(), &mut buf).unwrap(), 3000);
    }
}
