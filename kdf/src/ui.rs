//! kdf's own lines on stderr: `kdf: ...` messages, written with `\r\n` while
//! the terminal is in raw mode (an interactive session), else `\n`; and the
//! size of a terminal.

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};

static RAW: AtomicBool = AtomicBool::new(false);

/// Whether the terminal is raw (lines then end in `\r\n`).
pub fn set_raw(raw: bool) {
    RAW.store(raw, Ordering::SeqCst);
}

/// One line on stderr, as it is.
pub fn line(text: &str) {
    let end = if RAW.load(Ordering::SeqCst) { "\r\n" } else { "\n" };
    let _ = write!(std::io::stderr().lock(), "{text}{end}");
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

    #[test]
    fn a_terminal_reports_its_size_and_a_file_none() {
        let set = nix::pty::Winsize { ws_row: 30, ws_col: 100, ws_xpixel: 0, ws_ypixel: 0 };
        let pty = nix::pty::openpty(&set, None).unwrap();
        assert_eq!(window_size(&pty.slave), Some(kdf_proto::Winsize { rows: 30, cols: 100 }));
        let blank = nix::pty::openpty(None, None).unwrap();
        assert_eq!(window_size(&blank.slave), None, "0x0 is no size");
        assert_eq!(window_size(tempfile::tempfile().unwrap()), None);
    }
}
