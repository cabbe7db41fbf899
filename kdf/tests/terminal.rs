//! `kdf run` on a real terminal (a host pty): the interactive shell, live
//! window size, Ctrl-C to the guest's foreground job, the kill escape, and the
//! host terminal restored afterwards.

mod common;

use common::pty::Session;
use common::*;
use nix::sys::termios::tcgetattr;

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
    common::pty::resize_interrupt_and_exit(s, at, before.local_flags);
}

#[test]
fn enter_tilde_dot_kills_a_wedged_vm() {
    let mut s = start(&["--", "sh", "-c", "echo wedged; exec sleep 600"]);
    s.expect(0, "wedged");
    s.type_("\r~.");
    // Read before the exit is checked: kdf's last line may still be in the
    // pty when it has exited (a loaded host).
    s.expect(0, "killed the VM");
    let (status, _) = s.wait();
    assert_eq!(status, 125);
}
