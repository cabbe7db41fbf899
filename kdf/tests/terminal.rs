//! `kdf run` on a real terminal (a host pty): the interactive shell, live
//! window size, Ctrl-C to the guest's foreground job, the kill escape, and the
//! host terminal restored afterwards.

mod common;

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use common::pty::{winsize, Session};
use common::*;
use nix::sys::termios::{tcgetattr, LocalFlags};

fn start(args: &[&str]) -> Session {
    let dir = tempfile::tempdir().unwrap().keep();
    let mut cmd = kdf(&dir);
    cmd.arg("run").args(args);
    common::pty::start(cmd)
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
