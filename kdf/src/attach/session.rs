//! `kdf attach`: one command, or a shell, in the VM of a running `kdf run`,
//! with `kdf run`'s stream handling ([`crate::relay`]): output written as it
//! arrives, stdin under the guest's credit, a guest pty in raw mode with the
//! live window size, signals forwarded, and the command's exact status.
//! Leaving (the escape, a second signal, kdf attach dying) hangs the command
//! up and never ends the VM.

use std::io::IsTerminal;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kdf_proto::{ToGuest, ToHost};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGWINCH};
use signal_hook::iterator::Signals;

use super::client::Connection;
use crate::cli::AttachArgs;
use crate::errors::hinted;
use crate::relay::channel::{self, Credit, Sinks, Writer};
use crate::relay::event::Event;
use crate::relay::stdin;
use crate::relay::terminal::{self, RawMode};
use crate::ui::{self, say};
use crate::{plan, shares, status};

/// How long the command gets after a forwarded signal before kdf attach leaves.
const GRACE: Duration = Duration::from_secs(2);
/// How often the loop checks signals and the grace period.
const TICK: Duration = Duration::from_millis(20);

pub fn run(args: &AttachArgs) -> Result<i32> {
    let cwd = shares::current_dir()?;
    let cwd = cwd.canonicalize().unwrap_or(cwd);
    let exec = plan::exec(&args.command, &cwd, &[]);
    let program = String::from_utf8_lossy(&exec.argv[0]).into_owned();
    let (tty, stdin) = (exec.tty.is_some(), exec.stdin);
    let mut c = Connection::open(args.pid)?;
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP, SIGWINCH]).context("failed to set up signal handling")?;
    c.send(&ToGuest::Attach(exec))?;
    let raw = match tty && std::io::stdin().is_terminal() {
        true => Some(RawMode::enter()?),
        false => None,
    };
    if raw.is_some() {
        ui::set_raw(true);
        say(&format!("attached to the VM of kdf run pid {} (Enter ~ . leaves)", c.record.pid));
    }
    let (tx, rx) = mpsc::channel();
    let writer = Writer::new(c.stream.try_clone().context("failed to clone a socket")?);
    let credit = Credit::default();
    let (w, cr, t) = (writer.clone(), credit.clone(), tx.clone());
    let stream = c.stream;
    std::thread::spawn(move || channel::pump(stream, w, cr, t, Sinks::std()));
    if stdin {
        let w = writer.clone();
        std::thread::spawn(move || stdin::pump(w, credit, tty, tx));
    }
    let mut session = Session { writer, tty, program, report: Vec::new(), write_error: None };
    let end = session.main_loop(&rx, &mut signals, c.record.pid);
    drop(raw);
    ui::set_raw(false);
    for line in session.report {
        ui::line(&line);
    }
    end
}

struct Session {
    writer: Writer,
    tty: bool,
    program: String,
    /// kdf's lines, printed once the terminal is back to normal.
    report: Vec<String>,
    /// The first failure to write the command's output.
    write_error: Option<String>,
}

impl Session {
    fn main_loop(&mut self, rx: &Receiver<Event>, signals: &mut Signals, run_pid: u32) -> Result<i32> {
        // A forwarded signal, and when kdf attach leaves if the command lingers.
        let mut leaving: Option<(i32, Instant)> = None;
        loop {
            match rx.recv_timeout(TICK) {
                Ok(Event::Guest(ToHost::Exit(outcome))) => {
                    let (status, line) = status::of_outcome(&outcome, &self.program);
                    self.note(line);
                    return Ok(match self.write_error.take() {
                        Some(e) => {
                            self.note(Some(e));
                            status::FAILURE
                        }
                        None => status,
                    });
                }
                Ok(Event::Guest(ToHost::Refused(why))) => return Err(refused(why)),
                // A panic and its dump are kdf run's to report.
                Ok(Event::Guest(_) | Event::KvmFailure(_) | Event::Panicked | Event::Dumped(_))
                | Err(RecvTimeoutError::Timeout) => {}
                Ok(Event::Closed(_)) | Err(RecvTimeoutError::Disconnected) => {
                    self.note(Some(format!(
                        "the VM stopped before the command finished (kdf run pid {run_pid} ended)"
                    )));
                    return Ok(status::FAILURE);
                }
                Ok(Event::Escape) => {
                    self.note(Some("left the session (Enter ~ .); the command was hung up".into()));
                    return Ok(status::FAILURE);
                }
                Ok(Event::WriteFailed { stream, error }) => {
                    self.write_error.get_or_insert(format!("failed to write {stream}: {error}"));
                }
            }
            for sig in signals.pending() {
                if sig == SIGWINCH {
                    if let (Some(size), true) = (terminal::size(), self.tty) {
                        self.writer.send(&ToGuest::Winsize(size));
                    }
                    continue;
                }
                if leaving.is_some() {
                    return Ok(self.leave(sig));
                }
                self.writer.send(&ToGuest::Signal(sig));
                leaving = Some((sig, Instant::now() + GRACE));
            }
            if let Some((sig, _)) = leaving.filter(|(_, at)| Instant::now() >= *at) {
                return Ok(self.leave(sig));
            }
        }
    }

    /// Leaves the session after `sig` (the guest hangs the command up).
    fn leave(&mut self, sig: i32) -> i32 {
        let name = nix::sys::signal::Signal::try_from(sig).map(|s| s.as_str()).unwrap_or("a signal");
        self.note(Some(format!("left the session after {name}; the command was hung up")));
        128 + sig
    }

    fn note(&mut self, line: Option<String>) {
        if let Some(line) = line {
            self.report.push(format!("kdf: {line}"));
        }
    }
}

/// The guest (or kdf run) did not start the command.
fn refused(why: String) -> anyhow::Error {
    if why.starts_with("cannot enter") {
        return hinted(
            format!("the VM cannot start the command: {why}"),
            "the guest sees the host's files as kdf run shares them: attach from the run's directory, \
             a share, or a host path outside /tmp, /run, /var/tmp and /dev/shm (or use --chdir)",
        );
    }
    anyhow::anyhow!("the VM cannot start the command: {why}")
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use kdf_proto::Outcome;

    use super::*;

    /// The loop's ending for these events (no signals), and its report.
    fn ending(events: Vec<Event>) -> (Result<i32>, Vec<String>) {
        let (_guest, host) = UnixStream::pair().unwrap();
        let mut session = Session {
            writer: Writer::new(host),
            tty: false,
            program: "prog".into(),
            report: Vec::new(),
            write_error: None,
        };
        let (tx, rx) = mpsc::channel();
        for e in events {
            tx.send(e).unwrap();
        }
        let mut signals = Signals::new::<[i32; 0], i32>([]).unwrap();
        let end = session.main_loop(&rx, &mut signals, 42);
        (end, session.report)
    }

    #[test]
    fn the_commands_status_is_the_sessions() {
        let (end, report) = ending(vec![Event::Guest(ToHost::Exit(Outcome::Exited(3)))]);
        assert_eq!((end.unwrap(), report.len()), (3, 0));
        let (end, report) = ending(vec![Event::Guest(ToHost::Exit(Outcome::NotFound))]);
        assert_eq!(end.unwrap(), 127);
        assert_eq!(report, ["kdf: prog: command not found"]);
    }

    #[test]
    fn a_failed_write_of_the_output_fails_the_session() {
        let failed = Event::WriteFailed { stream: "stdout", error: "No space left on device".into() };
        let (end, report) = ending(vec![failed, Event::Guest(ToHost::Exit(Outcome::Exited(0)))]);
        assert_eq!(end.unwrap(), status::FAILURE);
        assert_eq!(report, ["kdf: failed to write stdout: No space left on device"]);
    }

    #[test]
    fn the_runs_end_and_the_escape_end_the_session_with_125() {
        let (end, report) = ending(vec![Event::Closed(None)]);
        assert_eq!(end.unwrap(), status::FAILURE);
        assert!(report[0].contains("kdf run pid 42 ended"), "{report:?}");
        let (end, report) = ending(vec![Event::Escape]);
        assert_eq!(end.unwrap(), status::FAILURE);
        assert!(report[0].contains("hung up"), "{report:?}");
    }

    #[test]
    fn a_refusal_is_an_error() {
        let (end, _) = ending(vec![Event::Guest(ToHost::Refused("cannot enter /x: gone".into()))]);
        assert!(end.unwrap_err().to_string().contains("cannot enter /x"));
    }

    #[test]
    fn a_missing_directory_in_the_guest_says_what_the_guest_sees() {
        let err = refused("cannot enter /tmp/x: No such file or directory (os error 2)".into());
        assert!(crate::errors::hint_of(&err).is_some_and(|h| h.contains("--chdir")));
        let err = refused("another kdf attach (pid 7) is attached to this VM: one session at a time".into());
        assert!(crate::errors::hint_of(&err).is_none());
        assert!(err.to_string().contains("pid 7"), "{err}");
    }
}
