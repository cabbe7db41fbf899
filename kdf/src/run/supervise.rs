//! One attempt's main loop: guest messages, signals, `--timeout`, the boot
//! timeout and the deaths of QEMU or virtiofsd, each turned into the run's
//! ending ([`Attempt`]) with its status and, for failures, the reason.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

use kdf_proto::{ToGuest, ToHost, PROTOCOL_VERSION};
use signal_hook::consts::SIGWINCH;
use signal_hook::iterator::Signals;

use super::channel::{Credit, Writer};
use super::console::{self, Tail};
use super::event::Event;
use super::prepare::Prepared;
use super::stdin;
use super::terminal;
use super::timings::Timings;
use crate::accel::{self, Decision};
use crate::child::Guard;
use crate::status;
use crate::ui::{self, say};
use crate::vm::qemu::Accel;

/// How long the command gets after SIGTERM (timeout) or a forwarded signal.
const GRACE: Duration = Duration::from_secs(2);
/// How often the loop checks processes, signals and deadlines.
const TICK: Duration = Duration::from_millis(20);
/// How long to wait for the channel to drain once QEMU has exited.
const DRAIN: Duration = Duration::from_secs(1);

/// How an attempt to boot ended.
pub enum Attempt {
    Finished(i32),
    /// KVM could not run the guest (tentative KVM only): retry under TCG.
    KvmFailed(String),
}

pub fn default_boot_timeout(accel: Accel) -> Duration {
    match accel {
        Accel::Kvm => Duration::from_secs(20),
        Accel::Tcg => Duration::from_secs(60),
    }
}

/// Why the run is ending early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    TimedOut,
    Signalled(i32),
}

pub struct Run<'a> {
    p: &'a Prepared,
    decision: &'a Decision,
    qemu: Guard,
    daemons: Vec<Guard>,
    writer: Writer,
    credit: Credit,
    tail: Tail,
    events: Sender<Event>,
    timings: Timings,
    /// kdf-init has started the command.
    ready: bool,
    ending: Option<Ending>,
    /// When to kill the VM if the command has not ended by then.
    kill_at: Option<Instant>,
    qemu_gone: Option<Instant>,
    boot_deadline: Instant,
    timeout_at: Option<Instant>,
}

impl<'a> Run<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        p: &'a Prepared,
        decision: &'a Decision,
        qemu: Guard,
        daemons: Vec<Guard>,
        (writer, credit, events): (Writer, Credit, Sender<Event>),
        tail: Tail,
        timings: Timings,
        started: Instant,
    ) -> Self {
        Run {
            p,
            decision,
            qemu,
            daemons,
            writer,
            credit,
            tail,
            events,
            timings,
            ready: false,
            ending: None,
            kill_at: None,
            qemu_gone: None,
            boot_deadline: Instant::now() + p.boot_timeout.unwrap_or(default_boot_timeout(decision.accel)),
            timeout_at: p.timeout.map(|t| started + t),
        }
    }

    pub fn main_loop(&mut self, rx: &Receiver<Event>, signals: &mut Signals) -> Attempt {
        loop {
            let step = match rx.recv_timeout(TICK) {
                Ok(event) => self.on_event(event),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(self.fail("the VM's channel closed")),
            };
            if let Some(end) = step.or_else(|| self.on_signals(signals)).or_else(|| self.on_tick()) {
                self.stop();
                return end;
            }
        }
    }

    fn stop(&mut self) {
        self.qemu.kill();
        for d in &mut self.daemons {
            d.kill();
        }
        self.timings.mark("stopped");
        if self.p.timings || self.p.verbose {
            for line in self.timings.report() {
                say(&line);
            }
        }
    }

    fn on_event(&mut self, event: Event) -> Option<Attempt> {
        match event {
            Event::Guest(ToHost::Hello { version, release }) => self.on_hello(version, &release),
            Event::Guest(ToHost::Ready { marks }) => {
                self.ready = true;
                self.timings.mark("command started");
                self.timings.guest = marks;
                self.start_stdin();
                None
            }
            Event::Guest(ToHost::Exit(outcome)) => {
                self.timings.mark("command ended");
                let (status, line) = status::of_outcome(&outcome, &self.p.program);
                if let Some(line) = line {
                    say(&line);
                }
                Some(Attempt::Finished(match self.ending {
                    Some(Ending::TimedOut) => self.timed_out(),
                    _ => status,
                }))
            }
            Event::Guest(ToHost::Failed { step, message }) => {
                Some(self.fail(&format!("the guest could not {step}: {message}")))
            }
            Event::Guest(other) => {
                say(&format!("warning: unexpected message from kdf-init: {other:?}"));
                None
            }
            Event::Closed(why) => Some(self.vm_ended(why)),
            Event::KvmFailure(line) if self.decision.tentative => Some(Attempt::KvmFailed(line)),
            Event::KvmFailure(line) => {
                self.print_tails();
                say(&format!("QEMU: {line}"));
                say("hint: KVM cannot run this guest here; use --accel tcg");
                Some(Attempt::Finished(status::FAILURE))
            }
            Event::Escape => {
                say("killed the VM (escape sequence)");
                Some(Attempt::Finished(status::FAILURE))
            }
        }
    }

    fn on_hello(&mut self, version: u32, release: &str) -> Option<Attempt> {
        self.timings.mark("guest up");
        if version != PROTOCOL_VERSION {
            say(&format!(
                "kdf-init speaks protocol {version}, this kdf speaks {PROTOCOL_VERSION}: \
                 install both from the same source (scripts/setup.sh)"
            ));
            return Some(Attempt::Finished(status::FAILURE));
        }
        if self.decision.tentative {
            let _ = accel::record(Accel::Kvm);
        }
        if self.p.verbose {
            say(&format!("guest kernel {release} is up; sending the plan"));
        }
        let mut plan = self.p.plan.clone();
        plan.clock_ns = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        self.writer.send(&ToGuest::Plan(plan));
        None
    }

    fn start_stdin(&mut self) {
        if self.p.plan.stdin {
            let (w, c, e, tty) =
                (self.writer.clone(), self.credit.clone(), self.events.clone(), self.p.plan.tty.is_some());
            std::thread::spawn(move || stdin::pump(w, c, tty, e));
        }
    }

    /// The channel ended without an exit status: the VM died.
    fn vm_ended(&mut self, why: Option<String>) -> Attempt {
        if let Some(ending) = self.ending.filter(|_| self.kill_at.is_some()) {
            return Attempt::Finished(self.ended_early(ending));
        }
        if self.decision.tentative && !self.ready {
            return Attempt::KvmFailed(why.unwrap_or_else(|| "the guest stopped during boot".into()));
        }
        // The channel closes as QEMU dies: give it a moment to be reaped.
        let what = match self.qemu.wait_for(Duration::from_millis(500)) {
            Some(s) if !s.success() => format!("QEMU exited ({s}) before the command finished"),
            _ => "the VM stopped before the command finished".to_string(),
        };
        self.fail(&why.map(|w| format!("{what} ({w})")).unwrap_or(what))
    }

    fn on_signals(&mut self, signals: &mut Signals) -> Option<Attempt> {
        for sig in signals.pending() {
            if sig == SIGWINCH {
                if let (Some(size), true) = (terminal::size(), self.p.plan.tty.is_some()) {
                    self.writer.send(&ToGuest::Winsize(size));
                }
                continue;
            }
            if !self.ready || self.kill_at.is_some() {
                // Not running yet, or a second signal: stop now.
                return Some(Attempt::Finished(self.ended_early(Ending::Signalled(sig))));
            }
            self.writer.send(&ToGuest::Signal(sig));
            self.ending.get_or_insert(Ending::Signalled(sig));
            self.kill_at = Some(Instant::now() + GRACE);
        }
        None
    }

    fn on_tick(&mut self) -> Option<Attempt> {
        let now = Instant::now();
        if self.kill_at.is_some_and(|at| now >= at) {
            let ending = self.ending.unwrap_or(Ending::TimedOut);
            return Some(Attempt::Finished(self.ended_early(ending)));
        }
        if self.timeout_at.is_some_and(|at| now >= at) && self.ending.is_none() {
            self.ending = Some(Ending::TimedOut);
            if !self.ready {
                return Some(Attempt::Finished(self.timed_out()));
            }
            self.writer.send(&ToGuest::Signal(libc::SIGTERM));
            self.kill_at = Some(now + GRACE);
        }
        if !self.ready && now >= self.boot_deadline {
            if self.decision.tentative {
                return Some(Attempt::KvmFailed("no boot within the KVM boot timeout".into()));
            }
            let secs = self.p.boot_timeout.unwrap_or(default_boot_timeout(self.decision.accel)).as_secs_f64();
            return Some(self.fail(&format!(
                "the guest did not finish booting within {secs}s (raise it with --boot-timeout)"
            )));
        }
        // (Only while QEMU runs: virtiofsd also exits when QEMU does.)
        if self.qemu.try_wait().is_none() {
            if let Some(status) = self.daemons.iter_mut().find_map(|d| d.try_wait()) {
                return Some(self.fail(&format!("a virtiofsd serving the guest's files exited ({status})")));
            }
        }
        // QEMU exited: the channel reader delivers what is left, then Closed.
        if self.qemu.try_wait().is_some() {
            let gone = *self.qemu_gone.get_or_insert(now);
            if now - gone > DRAIN {
                return Some(self.vm_ended(None));
            }
        }
        None
    }

    fn timed_out(&self) -> i32 {
        let secs = self.p.timeout.map(|t| t.as_secs_f64()).unwrap_or_default();
        say(&format!("the command timed out after {secs}s"));
        status::TIMEOUT
    }

    fn ended_early(&self, ending: Ending) -> i32 {
        match ending {
            Ending::TimedOut => self.timed_out(),
            Ending::Signalled(sig) => {
                let name = nix::sys::signal::Signal::try_from(sig).map(|s| s.as_str()).unwrap_or("signal");
                say(&format!("stopped the VM after {name}"));
                128 + sig
            }
        }
    }

    fn print_tails(&self) {
        if !self.p.verbose {
            for line in self.tail.lines() {
                say_raw(&format!("{}{line}", console::PREFIX));
            }
        }
        let qemu_tail = self.qemu.stderr_tail();
        for line in qemu_tail.lines().filter(|l| !l.trim().is_empty()) {
            say_raw(&format!("[qemu] {line}"));
        }
        for d in &self.daemons {
            for line in d.stderr_tail().lines().filter(|l| !l.trim().is_empty()) {
                say_raw(&format!("[virtiofsd] {line}"));
            }
        }
    }

    /// The VM failed: the console's last lines, then one line saying why.
    fn fail(&self, what: &str) -> Attempt {
        self.print_tails();
        let diagnosis = console::diagnose(&self.tail.evidence());
        match diagnosis {
            Some(d) => say(&format!("{what}: {d}")),
            None => say(what),
        }
        Attempt::Finished(status::FAILURE)
    }
}

fn say_raw(line: &str) {
    ui::line(line);
}
