//! `kdf run` on a real terminal (a host pty): the interactive shell, live
//! window size, Ctrl-C to the guest's foreground job, the kill escape, and the
//! host terminal restored afterwards.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use nix::pty::{openpty, Winsize};
use nix::sys::termios::{tcgetattr, LocalFlags};

struct Session {
    child: Child,
    master: std::fs::File,
    /// Kept open so the terminal's settings can be read after kdf exits.
    slave: OwnedFd,
    seen: Arc<Mutex<String>>,
}

fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }
}

fn start(args: &[&str]) -> Session {
    let pty = openpty(Some(&winsize(30, 100)), None).unwrap();
    let dir = tempfile::tempdir().unwrap().keep();
    let mut cmd = kdf(&dir);
    cmd.arg("run").args(args);
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
    fn type_(&mut self, s: &str) {
        self.master.write_all(s.as_bytes()).unwrap();
    }

    /// Waits until the output after `from` contains `what`; returns the new offset.
    fn expect(&self, from: usize, what: &str) -> usize {
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

    fn wait(mut self) -> (i32, OwnedFd) {
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

#[test]
fn interactive_shell_follows_the_window_and_takes_ctrl_c() {
    let mut s = start(&["-s", "/bin/sh"]);
    let before = tcgetattr(&s.slave).unwrap();
    let mut at = s.expect(0, "interactive session");
    s.type_("stty size\r");
    at = s.expect(at, "30 100");
    // SAFETY: TIOCSWINSZ on our own pty master; the kernel signals kdf.
    unsafe { libc::ioctl(s.master.as_raw_fd(), libc::TIOCSWINSZ, &winsize(40, 120)) };
    std::thread::sleep(Duration::from_millis(300));
    s.type_("stty size\r");
    at = s.expect(at, "40 120");
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
    assert_eq!(before.local_flags, after.local_flags);
}

#[test]
fn enter_tilde_dot_kills_a_wedged_vm() {
    let mut s = start(&["--", "sh", "-c", "echo wedged; exec sleep 600"]);
    s.expect(0, "wedged");
    s.type_("\r~.");
    let seen = Arc::clone(&s.seen);
    let (status, _) = s.wait();
    assert_eq!(status, 125);
    assert!(seen.lock().unwrap().contains("killed the VM"), "{}", seen.lock().unwrap());
}
