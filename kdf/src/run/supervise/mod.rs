//! One attempt's main loop: guest messages, signals, `--timeout`, the boot
//! timeout and the deaths of QEMU or virtiofsd, each turned into the run's
//! ending ([`Attempt`]) with its status and, for failures, the reason
//! ([`endings`]). With `--vmcore`, a panic is dumped before the VM ends.

mod endings;

use std::os::unix::net::UnixStream;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

use kdf_proto::{ToGuest, ToHost, PROTOCOL_VERSION};
use signal_hook::consts::SIGWINCH;
use signal_hook::iterator::Signals;

use super::attempt::{boot_limit, Attempt, Ending};
use super::console::Tail;
use super::prepare::Prepared;
use super::result::{self, Outcome};
use super::timings::Timings;
use super::verdict::KernelLog;
use super::vmcore;
use crate::accel::{self, Decision};
use crate::child::Guard;
use crate::relay::channel::{Credit, Writer};
use crate::relay::event::Event;
use crate::relay::{stdin, terminal};
use crate::status;
use crate::ui::{self, say};
use crate::vm::qemu::Accel;

/// How long the command gets after SIGTERM (timeout) or a forwarded signal.
const GRACE: Duration = Duration::from_secs(2);
/// How often the loop checks processes, signals and deadlines.
const TICK: Duration = Duration::from_millis(20);
/// How long to wait for the channel to drain once QEMU has exited.
const DRAIN: Duration = Duration::from_secs(1);
/// How long a virtiofsd's exit waits for QEMU's before it is blamed.
const DAEMON_BLAME: Duration = Duration::from_secs(1);

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
    /// None: no boot timeout (`-d`).
    boot_deadline: Option<Instant>,
    timeout_at: Option<Instant>,
    /// The first failure to write the command's output: `(stream, error)`.
    write_error: Option<(&'static str, String)>,
    /// kdf's lines about the ending, printed once the VM is stopped.
    report: Vec<String>,
    /// The guest kernel's log, taints and module failures.
    kernel: KernelLog,
    /// The guest kernel's release, once kdf-init said hello (the kernel booted
    /// under this accelerator).
    release: Option<String>,
    /// The command's own status, when it ended by itself.
    command_status: Option<i32>,
    /// kdf's own QMP monitor (`--vmcore`), until a dump takes it.
    pub(super) qmp: Option<UnixStream>,
    /// A dump is being written: the deadlines wait for it.
    dumping: bool,
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
            boot_deadline: boot_limit(p.boot_timeout, decision.accel).map(|t| Instant::now() + t),
            timeout_at: p.timeout.map(|t| started + t),
            write_error: None,
            report: Vec::new(),
            kernel: KernelLog::new(p.allow_splats.clone()),
            release: None,
            command_status: None,
            qmp: None,
            dumping: false,
        }
    }

    /// Runs until the attempt ends; then stops the VM first and prints after,
    /// so a reader that stopped reading never keeps the VM running.
    pub fn main_loop(&mut self, rx: &Receiver<Event>, signals: &mut Signals) -> Attempt {
        let end = loop {
            let step = match rx.recv_timeout(TICK) {
                Ok(event) => self.on_event(event),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(self.fail("the VM's channel closed")),
            };
            if let Some(end) = step.or_else(|| self.on_signals(signals)).or_else(|| self.on_tick()) {
                break end;
            }
        };
        self.stop();
        if let Some(v) = self.p.hw.vmcore.as_ref().filter(|_| self.dumping) {
            // Stopped mid-dump (a signal): half a dump is no dump.
            let _ = std::fs::remove_file(&v.path);
            self.note(&format!("the vmcore {} was not finished", v.path.display()));
        }
        let end = match (end, self.write_error.take()) {
            (Attempt::Finished(_), Some((stream, error))) => {
                self.note(&format!("failed to write {stream}: {error}"));
                Attempt::Finished(status::FAILURE)
            }
            (end, _) => end,
        };
        let end = match end {
            Attempt::Finished(status) => Attempt::Finished(self.write_files(status)),
            end => end,
        };
        for line in std::mem::take(&mut self.report) {
            ui::line(&line);
        }
        if self.p.timings || self.p.verbose {
            for line in self.timings.report() {
                say(&line);
            }
        }
        end
    }

    /// Writes `--result` and `--ktap`; a file that cannot be written fails the run.
    fn write_files(&mut self, status: i32) -> i32 {
        let outcome = Outcome { status, command_status: self.command_status, release: self.release.clone() };
        match result::write_files(self.p, self.decision.accel, &self.timings, &self.kernel, outcome) {
            Some(why) => {
                self.note(&why);
                status::FAILURE
            }
            None => status,
        }
    }

    fn stop(&mut self) {
        self.qemu.kill();
        for d in &mut self.daemons {
            d.kill();
        }
        self.timings.mark("stopped");
    }

    /// A `kdf:` line for after the VM has stopped.
    fn note(&mut self, msg: &str) {
        self.report.push(format!("kdf: {msg}"));
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
                // Everything the guest sent before `Exit` has been written.
                self.writer.send(&ToGuest::Ack);
                self.timings.mark("command ended");
                let (status, line) = status::of_outcome(&outcome, &self.p.program);
                if let Some(line) = line {
                    self.note(&line);
                }
                self.command_status = (outcome != kdf_proto::Outcome::NotRun).then_some(status);
                let (status, report) = self.kernel.verdict(status, self.p.verbose, &self.p.kunit);
                self.report.extend(report);
                Some(Attempt::Finished(match self.ending {
                    Some(Ending::TimedOut) => self.ended_early(Ending::TimedOut),
                    _ => status,
                }))
            }
            Event::Guest(ToHost::Kmsg(records)) => {
                self.kernel.records(&records);
                None
            }
            Event::Guest(ToHost::Tainted(t)) => {
                self.kernel.tainted(t);
                None
            }
            Event::Guest(ToHost::ModuleFailed { name, action, error, log }) => {
                let lines = self.kernel.module_failed(&name, &action, &error, &log);
                self.report.extend(lines);
                None
            }
            Event::Guest(ToHost::Failed { step, message }) => {
                self.writer.send(&ToGuest::Ack);
                self.print_tails();
                // The console's kdf-init line says the same: no diagnosis.
                self.note(&format!("the guest could not {step}: {message}"));
                Some(Attempt::Finished(status::FAILURE))
            }
            Event::Guest(other) => {
                say(&format!("warning: unexpected message from kdf-init: {other:?}"));
                None
            }
            Event::Closed(why) => Some(self.vm_ended(why)),
            Event::KvmFailure(line) if self.decision.tentative && !self.ready => {
                Some(Attempt::KvmFailed(line))
            }
            Event::KvmFailure(line) => {
                self.print_tails();
                self.note(&format!("QEMU: {line}"));
                self.note("hint: KVM cannot run this guest here; use --accel tcg");
                Some(Attempt::Finished(status::FAILURE))
            }
            Event::Escape => {
                self.note("killed the VM (escape sequence)");
                Some(Attempt::Finished(status::FAILURE))
            }
            Event::WriteFailed { stream, error } => {
                self.write_error.get_or_insert((stream, error));
                None
            }
            Event::Panicked => {
                self.on_panicked();
                None
            }
            Event::Dumped(result) => Some(self.on_dumped(result)),
        }
    }

    /// The guest kernel panicked. With `--vmcore` it waits (`panic=0`) while
    /// QEMU writes its memory; otherwise it resets by itself (`panic=-1`).
    fn on_panicked(&mut self) {
        let (Some(vmcore), Some(qmp)) = (&self.p.hw.vmcore, self.qmp.take()) else { return };
        if self.p.verbose {
            say(&format!("the guest kernel panicked; writing its memory to {}", vmcore.path.display()));
        }
        self.dumping = true;
        self.timings.mark("panicked");
        let events = self.events.clone();
        vmcore::start(qmp, vmcore.path.clone(), move |result| drop(events.send(Event::Dumped(result))));
    }

    /// The dump is done: the panic is reported as without `--vmcore`, then
    /// where the dump is.
    fn on_dumped(&mut self, result: Result<crate::qmp::Written, String>) -> Attempt {
        self.dumping = false;
        self.timings.mark("vmcore written");
        let end = self.fail("the VM stopped before the command finished");
        if let Some(v) = &self.p.hw.vmcore {
            self.report.extend(vmcore::report(v, &result));
        }
        end
    }

    fn on_hello(&mut self, version: u32, release: &str) -> Option<Attempt> {
        self.timings.mark("guest up");
        if version != PROTOCOL_VERSION {
            self.note(&format!(
                "kdf-init speaks protocol {version}, this kdf speaks {PROTOCOL_VERSION}: \
                 install both from the same source (scripts/setup.sh)"
            ));
            return Some(Attempt::Finished(status::FAILURE));
        }
        self.release = Some(release.to_string());
        // The verdict is kept only once a guest has booted under it.
        if self.decision.tentative {
            let _ = accel::record(Accel::Kvm);
        } else if self.decision.fallback {
            let _ = accel::record(Accel::Tcg);
        }
        if self.p.verbose {
            say(&format!("guest kernel {release} is up; sending the plan"));
        }
        let mut plan = self.p.plan.clone();
        plan.clock_ns = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        self.writer.send(&ToGuest::Plan(Box::new(plan)));
        None
    }

    fn start_stdin(&mut self) {
        if self.p.plan.command.stdin {
            let (w, c, e, tty) = (self.writer.clone(), self.credit.clone(), self.events.clone(), self.p.tty);
            std::thread::spawn(move || stdin::pump(w, c, tty, e));
        }
    }

    fn on_signals(&mut self, signals: &mut Signals) -> Option<Attempt> {
        for sig in signals.pending() {
            if sig == SIGWINCH {
                if let (Some(size), true) = (terminal::size(), self.p.tty) {
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
        if self.dumping {
            // The kernel is dead; the dump is what is left to wait for.
            return None;
        }
        if self.timeout_at.is_some_and(|at| now >= at) && self.ending.is_none() {
            self.ending = Some(Ending::TimedOut);
            if !self.ready {
                return Some(Attempt::Finished(self.ended_early(Ending::TimedOut)));
            }
            self.writer.send(&ToGuest::Signal(libc::SIGTERM));
            self.kill_at = Some(now + GRACE);
        }
        if self.release.is_none() && self.boot_deadline.is_some_and(|at| now >= at) {
            if self.kvm_to_blame() {
                return Some(Attempt::KvmFailed("no boot within the KVM boot timeout".into()));
            }
            let secs = boot_limit(self.p.boot_timeout, self.decision.accel).unwrap_or_default().as_secs_f64();
            let why =
                format!("the guest did not finish booting within {secs}s (raise it with --boot-timeout)");
            // kdf-init never said hello: the kernel did not reach init.
            let status = self.failed(&why);
            return Some(Attempt::Finished(if status == status::FAILURE { status::KERNEL } else { status }));
        }
        if let Some(status) = self.daemons.iter_mut().find_map(|d| d.try_wait()) {
            // virtiofsd also exits when QEMU disconnects (status 0): if QEMU is
            // ending, the VM's ending is what to report.
            if self.qemu.try_wait().is_none() && self.qemu.wait_for(DAEMON_BLAME).is_none() {
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
}
