//! The relay against a fake host (a socketpair) and pipes standing in for the
//! command's streams; the last tests run real processes through the whole loop.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use kdf_proto::{Exec, Outcome, ToGuest, ToHost, MAX_DATA};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};
use nix::unistd::{read, write, Pid};

use super::{until_exit, Relay, Waiter};
use crate::command::{self, Child};
use crate::testing::{
    channel, credit, exec, input_pipe, output, output_pipe, processes, set_nonblocking, Host,
};

fn child() -> Child {
    Child { pid: Pid::from_raw(0), out: None, err: None, input: None, pty: None }
}

/// Everything readable from `fd` now (it must be non-blocking); `None` at EOF.
fn read_now(fd: &OwnedFd) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match read(fd.as_raw_fd(), &mut buf) {
            Ok(0) if got.is_empty() => return None,
            Ok(0) | Err(Errno::EAGAIN) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// A stdin pipe holding at most one page, so the command "reads slowly".
fn small_input_pipe() -> (OwnedFd, OwnedFd) {
    let (init, command) = input_pipe();
    fcntl(init.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(4096)).unwrap();
    set_nonblocking(&command);
    (init, command)
}

#[test]
fn stdin_is_credited_only_as_the_command_accepts_it() {
    let _lock = processes();
    let (mut port, mut host) = channel();
    let (init_end, command_end) = small_input_pipe();
    let mut relay = Relay::new(&mut port, Child { input: Some(init_end), ..child() });
    let data: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();

    relay.handle(ToGuest::Stdin(data.clone()));
    assert_eq!(credit(&host.received()), 0, "nothing written yet");
    let mut delivered = Vec::new();
    let mut credited = 0;
    while delivered.len() < data.len() {
        relay.write_stdin();
        relay.write_stdin(); // the pipe is full now: no credit for nothing
        credited += credit(&host.received());
        delivered.extend(read_now(&command_end).unwrap());
        assert_eq!(credited, delivered.len() as u64);
    }
    assert_eq!(delivered, data);
    assert!(relay.pending.is_empty());
}

#[test]
fn stdin_nobody_reads_is_credited_at_once() {
    let _lock = processes();
    let (mut port, mut host) = channel();
    let mut relay = Relay::new(&mut port, child());
    relay.handle(ToGuest::Stdin(vec![b'x'; 1000]));
    assert_eq!(host.received(), [ToHost::StdinCredit(1000)]);
    assert!(relay.pending.is_empty());
}

#[test]
fn end_of_stdin_closes_the_pipe_only_after_the_pending_bytes() {
    let _lock = processes();
    let (mut port, _host) = channel();
    let (init_end, command_end) = small_input_pipe();
    let mut relay = Relay::new(&mut port, Child { input: Some(init_end), ..child() });
    relay.handle(ToGuest::Stdin(vec![b'x'; 10_000]));
    relay.handle(ToGuest::StdinEof);
    let mut delivered = 0;
    loop {
        relay.write_stdin();
        match read_now(&command_end) {
            Some(chunk) => delivered += chunk.len(),
            None => break,
        }
        assert_eq!(relay.child.input.is_some(), delivered < 10_000 || !relay.pending.is_empty());
    }
    assert_eq!(delivered, 10_000, "EOF came before the data");
}

#[test]
fn end_of_stdin_with_nothing_pending_closes_the_pipe_at_once() {
    let _lock = processes();
    let (mut port, _host) = channel();
    let (init_end, command_end) = input_pipe();
    set_nonblocking(&command_end);
    let mut relay = Relay::new(&mut port, Child { input: Some(init_end), ..child() });
    relay.handle(ToGuest::StdinEof);
    assert!(relay.child.input.is_none());
    assert_eq!(read_now(&command_end), None);
}

#[test]
fn end_of_stdin_keeps_a_pty_master_open_for_the_output() {
    let _lock = processes();
    let (mut port, _host) = channel();
    let (master, _slave) = input_pipe();
    let pty = Some(master.try_clone().unwrap());
    let mut relay = Relay::new(&mut port, Child { input: Some(master), pty, ..child() });
    relay.handle(ToGuest::StdinEof);
    assert!(relay.child.input.is_some());
}

#[test]
fn stdin_the_command_closed_is_credited_and_dropped() {
    let _lock = processes();
    let (mut port, mut host) = channel();
    let (init_end, command_end) = input_pipe();
    let mut relay = Relay::new(&mut port, Child { input: Some(init_end), ..child() });
    drop(command_end);
    relay.handle(ToGuest::Stdin(vec![b'x'; 300]));
    relay.write_stdin();
    assert_eq!(host.received(), [ToHost::StdinCredit(300)]);
    assert!(relay.child.input.is_none() && relay.pending.is_empty());
}

#[test]
fn a_closed_host_stdout_closes_the_commands_stdout() {
    // A process another test forks holds a copy of every descriptor until it
    // execs: hold the lock, or the pipe's read end may still be open there.
    let _lock = processes();
    let (mut port, _host) = channel();
    let (init_end, command_end) = output_pipe();
    let mut relay = Relay::new(&mut port, Child { out: Some(init_end), ..child() });
    relay.handle(ToGuest::StdoutClosed);
    assert!(relay.child.out.is_none());
    // The command's next write fails with EPIPE (SIGPIPE where not ignored).
    assert_eq!(write(&command_end, b"more"), Err(Errno::EPIPE));
}

#[test]
fn output_buffered_at_exit_is_sent_though_a_background_writer_holds_the_pipes() {
    let _lock = processes();
    let (mut port, mut host) = channel();
    let (out, out_writer) = output_pipe();
    let (err, err_writer) = output_pipe();
    write(&out_writer, b"last words").unwrap();
    write(&err_writer, b"oops").unwrap();
    let mut relay = Relay::new(&mut port, Child { out: Some(out), err: Some(err), ..child() });
    relay.drain();
    let got = host.received();
    assert_eq!(output(&got, false), b"last words");
    assert_eq!(output(&got, true), b"oops");
}

#[test]
fn the_drain_after_exit_is_bounded_when_a_background_writer_keeps_writing() {
    let _lock = processes();
    let (mut port, host) = channel();
    let reader = std::thread::spawn(move || host.until_closed());
    // A stdout that is never empty: a background writer faster than the relay.
    let endless = OwnedFd::from(std::fs::File::open("/dev/zero").unwrap());
    let mut relay = Relay::new(&mut port, Child { out: Some(endless), ..child() });
    relay.drain();
    drop(relay);
    drop(port);
    let frames = reader.join().unwrap();
    assert!((1..=64).contains(&frames.len()), "{} frames", frames.len());
    assert!(output(&frames, false).len() <= 64 * MAX_DATA);
}

/// Runs `exec` through the whole relay loop (polling for the exit, as init
/// does without a signalfd), the host side in a thread driven by `host`.
fn run(exec: &Exec, host: impl FnOnce(Host) -> Vec<ToHost> + Send + 'static) -> (Outcome, Vec<ToHost>) {
    let _lock = processes();
    let (mut port, host_end) = channel();
    let host = std::thread::spawn(move || host(host_end));
    let child = command::spawn(exec).expect("spawn");
    let outcome = until_exit(&mut port, child, &Waiter::Sigchld(None));
    drop(port);
    (outcome, host.join().unwrap())
}

fn sh(script: &str) -> Exec {
    exec(&["/bin/sh", "-c", script])
}

#[test]
fn the_commands_output_and_exit_status_reach_the_host() {
    let (outcome, got) = run(&sh("printf out; printf err >&2; exit 3"), |h| h.until_closed());
    assert_eq!(outcome, Outcome::Exited(3));
    assert_eq!(output(&got, false), b"out");
    assert_eq!(output(&got, true), b"err");
}

#[test]
fn the_file_the_host_found_runs_with_argv0_as_given() {
    let mut exec = exec(&["kdf-no-such-name", "-c", "tr '\\0' ' ' < /proc/$$/cmdline; exit 4"]);
    exec.program = Some(b"/bin/sh".to_vec());
    let (outcome, got) = run(&exec, |h| h.until_closed());
    assert_eq!(outcome, Outcome::Exited(4));
    assert!(output(&got, false).starts_with(b"kdf-no-such-name -c "), "{:?}", output(&got, false));
}

#[test]
fn a_file_the_host_found_that_will_not_execute_falls_back_to_the_path_search() {
    let dir = tempfile::tempdir().unwrap();
    let not_executable = dir.path().join("sh");
    std::fs::write(&not_executable, b"#!/bin/sh\nexit 9\n").unwrap();
    for program in [not_executable.clone(), dir.path().join("gone"), not_executable.join("x")] {
        let mut exec = exec(&["sh", "-c", "exit 5"]);
        exec.program = Some(program.into_os_string().into_encoded_bytes());
        let (outcome, _) = run(&exec, |h| h.until_closed());
        assert_eq!(outcome, Outcome::Exited(5));
    }
}

#[test]
fn stdin_reaches_the_command_and_its_end_lets_the_command_finish() {
    let mut exec = sh("exec cat");
    exec.stdin = true;
    let (outcome, got) = run(&exec, |mut h| {
        h.send(&ToGuest::Stdin(b"hello ".to_vec()));
        h.send(&ToGuest::Stdin(b"world".to_vec()));
        h.send(&ToGuest::StdinEof);
        h.until_closed()
    });
    assert_eq!(outcome, Outcome::Exited(0));
    assert_eq!(output(&got, false), b"hello world");
    assert_eq!(credit(&got), 11);
}

#[test]
fn stdin_the_port_read_before_the_command_started_is_not_left_waiting() {
    let _lock = processes();
    let (mut port, mut host) = channel();
    // One read takes the request and the stdin after it (kdf attach sends both at once).
    host.send(&ToGuest::Stdin(b"early".to_vec()));
    host.send(&ToGuest::StdinEof);
    port.fill();
    let mut exec = sh("exec cat");
    exec.stdin = true;
    let child = command::spawn(&exec).expect("spawn");
    let pid = child.pid;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(until_exit(&mut port, child, &Waiter::Sigchld(None))));
    let outcome = rx.recv_timeout(Duration::from_secs(20));
    if outcome.is_err() {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL);
    }
    assert_eq!(outcome, Ok(Outcome::Exited(0)), "cat never saw its stdin end");
    assert_eq!(output(&host.received(), false), b"early");
}

#[test]
fn a_signal_from_the_host_ends_the_command() {
    let (outcome, _) = run(&sh("echo ready; exec sleep 30"), |mut h| {
        let mut signals = h.try_clone();
        let mut got = Vec::new();
        while let Some(msg) = h.recv() {
            // Once the command runs ("ready"), as kdf does on Ctrl-C or a timeout.
            if matches!(msg, ToHost::Stdout(_)) && !got.iter().any(|m| matches!(m, ToHost::Stdout(_))) {
                signals.send(&ToGuest::Signal(libc::SIGTERM));
            }
            got.push(msg);
        }
        got
    });
    assert_eq!(outcome, Outcome::Signaled(libc::SIGTERM));
}

#[test]
fn a_background_process_holding_stdout_does_not_keep_init_waiting() {
    let start = Instant::now();
    let (outcome, got) = run(&sh("sleep 5 & echo done"), |h| h.until_closed());
    assert_eq!(outcome, Outcome::Exited(0));
    assert_eq!(output(&got, false), b"done\n");
    assert!(start.elapsed() < Duration::from_secs(4), "waited {:?}", start.elapsed());
}
