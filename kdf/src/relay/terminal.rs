//! The host terminal in `--tty` mode: raw mode for the session (restored on
//! every exit path through the guard), its size, and the escape sequence that
//! kills a wedged VM: Enter, `~`, `.` (as ssh; `~~` sends one `~`).

use std::os::fd::BorrowedFd;

use anyhow::{Context, Result};
use kdf_proto::Winsize;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

/// Puts stdin's terminal in raw mode until dropped.
#[derive(Debug)]
pub struct RawMode {
    saved: Termios,
}

fn stdin() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

impl RawMode {
    pub fn enter() -> Result<RawMode> {
        let saved = tcgetattr(stdin()).context("failed to read the terminal's settings")?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin(), SetArg::TCSADRAIN, &raw).context("failed to put the terminal in raw mode")?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(stdin(), SetArg::TCSADRAIN, &self.saved);
    }
}

/// The size of the terminal on stdout, if it is one.
pub fn size() -> Option<Winsize> {
    crate::ui::window_size(std::io::stdout())
}

/// Recognises Enter `~` `.` in typed input.
#[derive(Debug)]
pub struct Escape {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    LineStart,
    Tilde,
    Other,
}

impl Default for Escape {
    fn default() -> Self {
        Escape { state: State::LineStart }
    }
}

pub const ESCAPE_HELP: &str = "Enter ~ . kills the VM";

impl Escape {
    /// The bytes to pass on, and whether the kill sequence was typed.
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            self.state = match (self.state, b) {
                (State::Tilde, b'.') => return (out, true),
                (State::Tilde, b'~') => {
                    out.push(b'~');
                    State::Other
                }
                (State::Tilde, b) => {
                    out.extend_from_slice(&[b'~', b]);
                    if b == b'\r' || b == b'\n' {
                        State::LineStart
                    } else {
                        State::Other
                    }
                }
                (State::LineStart, b'~') => State::Tilde,
                (_, b) => {
                    out.push(b);
                    if b == b'\r' || b == b'\n' {
                        State::LineStart
                    } else {
                        State::Other
                    }
                }
            };
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enter_tilde_dot_kills() {
        let mut e = Escape::default();
        assert_eq!(e.feed(b"ls\r"), (b"ls\r".to_vec(), false));
        assert_eq!(e.feed(b"~"), (Vec::new(), false));
        assert!(e.feed(b".").1);
        assert!(Escape::default().feed(b"~.").1, "at the very start too");
    }

    #[test]
    fn tildes_elsewhere_pass_through() {
        let mut e = Escape::default();
        assert_eq!(e.feed(b"a~.b"), (b"a~.b".to_vec(), false));
        let mut e = Escape::default();
        assert_eq!(e.feed(b"~~"), (b"~".to_vec(), false));
        let mut e = Escape::default();
        assert_eq!(e.feed(b"~x\r~"), (b"~x\r".to_vec(), false));
        assert!(e.feed(b".").1);
    }
}
