//! kdf on a real terminal: a host pty as its controlling terminal (stdin,
//! stdout and stderr), what it printed, and typing into it.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::pty::{openpty, Winsize};

use super::LIMIT;

pub struct Session {
    pub child: Child,
    pub master: std::fs::File,
    /// Kept open so the terminal's settings can be read after kdf exits.
    pub slave: OwnedFd,
    pub seen: Arc<Mutex<String>>,
}

pub fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }
}

/// Starts `cmd` on a fresh 30x100 pty.
pub fn start(mut cmd: Command) -> Session {
    let pty = openpty(Some(&winsize(30, 100)), None).unwrap();
    let slave = pty.slave;
    cmd.stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap());
    // SAFETY: setsid and TIOCSCTTY are async-signal-safe; they make the pty
    // kdf's controlling terminal, as in a real login.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let master = std::fs::File::from(pty.master);
    let seen = Arc::new(Mutex::new(String::new()));
    let (mut reader, s) = (master.try_clone().unwrap(), Arc::clone(&seen));
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            s.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    Session { child, master, slave, seen }
}

impl Session {
    pub fn type_(&mut self, s: &str) {
        self.master.write_all(s.as_bytes()).unwrap();
    }

    /// Waits until the output after `from` contains `what`; returns the new offset.
    pub fn expect(&self, from: usize, what: &str) -> usize {
        let start = Instant::now();
        loop {
            let seen = self.seen.lock().unwrap();
            if let Some(at) = seen[from.min(seen.len())..].find(what) {
                return from + at + what.len();
            }
            drop(seen);
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "never saw {what:?} in:\n{}",
                self.seen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait(mut self) -> (i32, OwnedFd) {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return (s.code().unwrap_or(-1), self.slave);
            }
            assert!(start.elapsed() < LIMIT, "kdf did not exit:\n{}", self.seen.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// From `at` on, in a shell on `s`: a resize followed live, Ctrl-C for its
/// foreground job only, `exit 5` passed back, and the terminal left with the
/// flags it had before (`before`).
pub fn resize_interrupt_and_exit(mut s: Session, mut at: usize, before: nix::sys::termios::LocalFlags) {
    use nix::sys::termios::{tcgetattr, LocalFlags};
    use std::os::fd::AsRawFd;
    // SAFETY: TIOCSWINSZ on our own pty master; the kernel signals kdf.
    unsafe { libc::ioctl(s.master.as_raw_fd(), libc::TIOCSWINSZ, &winsize(40, 120)) };
    std::thread::sleep(Duration::from_millis(300));
    s.type_("stty size\r");
    at = s.expect(at, "40 120");
    // Ctrl-C reaches the guest's foreground job, not the shell.
    s.type_("sleep 300\r");
    std::thread::sleep(Duration::from_millis(1500));
    s.type_("\x03");
    s.type_("echo al''ive\r");
    s.expect(at, "alive");
    s.type_("exit 5\r");
    let (status, slave) = s.wait();
    assert_eq!(status, 5);
    let after = tcgetattr(&slave).unwrap();
    assert!(after.local_flags.contains(LocalFlags::ICANON | LocalFlags::ECHO), "terminal restored");
    assert_eq!(before, after.local_flags);
}
