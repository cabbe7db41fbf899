//! The attach channel ([`kdf_proto::ATTACH_PORT_NAME`]): `kdf attach`
//! sessions, one after another, and `kdf sysrq` keys, served by a thread of
//! their own beside the run's command. A session runs its command with the
//! run's relay code and ends with `Exit` (or `Refused`, when it could not
//! start); kdf's end of the port (`kdf run`) tells a client's departure with
//! `Hangup`. Nothing here can hold up the run: the thread shares no lock with
//! the main relay except the reaper's, held only around `waitpid`.

use kdf_proto::{Exec, ToGuest, ToHost, ATTACH_PORT_NAME, PROTOCOL_VERSION};
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};

use crate::log::say;
use crate::port::Port;
use crate::{command, reaper, relay, sysrq};

/// Starts serving the attach channel (phase two: the host's files are
/// mounted). A kernel or QEMU without the port only loses `kdf attach`.
pub fn start(release: String) {
    let spawned = std::thread::Builder::new().name("attach".into()).spawn(move || {
        // Signals are the main thread's: a SIGCHLD taken here would never
        // reach the main relay's signalfd (see kmsg.rs).
        let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), None);
        let mut port = match Port::open_named(ATTACH_PORT_NAME) {
            Ok(port) => port,
            Err(e) => return say(&format!("warning: no kdf attach: {e}")),
        };
        port.send(&ToHost::Hello { version: PROTOCOL_VERSION, release });
        serve(&mut port);
    });
    if let Err(e) = spawned {
        say(&format!("warning: no kdf attach: cannot start its thread: {e}"));
    }
}

/// Answers requests until the host hangs up (the VM is ending).
fn serve(port: &mut Port) {
    while let Ok(msg) = port.recv() {
        match msg {
            ToGuest::Attach(exec) => session(port, &exec),
            ToGuest::Sysrq(key) => {
                let answer = sysrq::trigger(key);
                port.send(&answer);
            }
            // Stragglers of a session that has just ended (frames its client
            // sent before it saw `Exit`), or a hangup meant for it.
            ToGuest::Hangup
            | ToGuest::Stdin(_)
            | ToGuest::StdinEof
            | ToGuest::Signal(_)
            | ToGuest::Winsize(_)
            | ToGuest::StdoutClosed
            | ToGuest::StderrClosed => {}
            other => say(&format!("warning: ignoring {other:?} on the attach channel")),
        }
    }
}

/// One session: the command, relayed until it exits or its client goes away.
fn session(port: &mut Port, exec: &Exec) {
    if let Err(e) = command::check_cwd(exec) {
        return port.send(&ToHost::Refused(e.to_string()));
    }
    let outcome = match reaper::spawn_kept(|| command::spawn(exec), |child| child.pid) {
        Ok(child) => relay::run_session(port, child),
        Err(outcome) => outcome,
    };
    port.send(&ToHost::Exit(outcome));
}

#[cfg(test)]
mod tests {
    use super::*;
    use kdf_proto::Outcome;

    use crate::testing::{channel, exec, output, processes};

    /// What a session that needs no input sends, through its `Exit`.
    fn first_answer(exec: &Exec) -> Vec<ToHost> {
        let (mut port, mut host) = channel();
        session(&mut port, exec);
        host.received()
    }

    #[test]
    fn a_session_runs_its_command_and_ends_with_its_status() {
        let _lock = processes();
        let got = first_answer(&exec(&["/bin/sh", "-c", "echo up; exit 4"]));
        assert_eq!(output(&got, false), b"up\n");
        assert_eq!(got.last(), Some(&ToHost::Exit(Outcome::Exited(4))));
    }

    #[test]
    fn a_missing_directory_is_refused_and_nothing_runs() {
        let _lock = processes();
        let mut e = exec(&["true"]);
        e.cwd = b"/nonexistent/kdf-attach-dir".to_vec();
        let got = first_answer(&e);
        assert!(matches!(&got[..], [ToHost::Refused(why)] if why.contains("/nonexistent/kdf-attach-dir")));
    }

    #[test]
    fn a_missing_program_is_not_found() {
        let _lock = processes();
        let got = first_answer(&exec(&["/nonexistent/kdf-attach-cmd"]));
        assert_eq!(got, [ToHost::Exit(Outcome::NotFound)]);
    }

    #[test]
    fn a_hangup_ends_the_session_and_sighups_the_command() {
        let _lock = processes();
        let (mut port, mut host) = channel();
        let mut sender = host.try_clone();
        let marker = std::env::temp_dir().join(format!("kdf-init-hup-{}", std::process::id()));
        // Its streams close with the session: the shell's "Hangup" notice
        // about the killed `sleep` would be its death by SIGPIPE.
        let script = format!(
            "exec 2>/dev/null; trap 'echo hup > {}; exit 0' HUP; echo up; while :; do sleep 0.05; done",
            marker.display()
        );
        let guest = std::thread::spawn(move || {
            session(&mut port, &exec(&["/bin/sh", "-c", &script]));
            serve(&mut port);
        });
        assert_eq!(host.recv(), Some(ToHost::Stdout(b"up\n".to_vec())));
        sender.send(&ToGuest::Hangup);
        assert_eq!(host.recv(), Some(ToHost::Exit(Outcome::Signaled(libc::SIGHUP))));
        // The channel serves the next request.
        sender.send(&ToGuest::Attach(exec(&["/bin/sh", "-c", "exit 9"])));
        assert_eq!(host.recv(), Some(ToHost::Exit(Outcome::Exited(9))));
        drop(sender);
        drop(host);
        guest.join().unwrap();
        let start = std::time::Instant::now();
        while !marker.exists() {
            assert!(start.elapsed() < std::time::Duration::from_secs(20), "the command never saw SIGHUP");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(&marker);
    }
}
