//! kdf's own lines on stderr: `kdf: ...` messages, written with `\r\n` while
//! the terminal is in raw mode (an interactive session), else `\n`.

use std::io::Write;
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
