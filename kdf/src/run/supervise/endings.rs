//! How an attempt's VM ended, turned into the run's status and kdf's report:
//! the VM dying (a panic, a failed boot, KVM to blame), a timeout or a
//! signal, with the console's and children's last lines for failures.

use std::time::Duration;

use super::Run;
use crate::accel;
use crate::run::attempt::{Attempt, Ending};
use crate::run::console;
use crate::status;

impl Run<'_> {
    /// Under tentative KVM, a guest that ends before `Hello` with nothing else
    /// to blame (no panic or BUG on the console, no QEMU error but its KVM
    /// messages) is KVM failing.
    pub(super) fn kvm_to_blame(&self) -> bool {
        let qemu = self.qemu.stderr_tail();
        let qemu_error = qemu.lines().any(|l| !l.trim().is_empty() && !accel::is_kvm_failure(l));
        let booted = self.release.is_some();
        self.decision.tentative
            && !booted
            && console::diagnose(&self.tail.evidence()).is_none()
            && !qemu_error
    }

    /// The channel ended without an exit status: the VM died.
    pub(super) fn vm_ended(&mut self, why: Option<String>) -> Attempt {
        if let Some(ending) = self.ending.filter(|_| self.kill_at.is_some()) {
            return Attempt::Finished(self.ended_early(ending));
        }
        // The channel closes as QEMU dies: give it a moment to be reaped, and
        // the console's reader a moment to take its last lines.
        let status = self.qemu.wait_for(Duration::from_millis(500));
        self.tail.wait_end(Duration::from_millis(500));
        if self.kvm_to_blame() {
            return Attempt::KvmFailed(why.unwrap_or_else(|| "the guest stopped during boot".into()));
        }
        let what = match status {
            Some(s) if !s.success() => format!("QEMU exited ({s}) before the command finished"),
            _ => "the VM stopped before the command finished".to_string(),
        };
        self.fail(&why.map(|w| format!("{what} ({w})")).unwrap_or(what))
    }

    pub(super) fn ended_early(&mut self, ending: Ending) -> i32 {
        let (status, why) = ending.report(self.p.timeout);
        self.note(&why);
        status
    }

    /// The console's, QEMU's and virtiofsd's last lines, for the report.
    pub(super) fn print_tails(&mut self) {
        let mut children = vec![("[qemu]", self.qemu.stderr_tail())];
        children.extend(self.daemons.iter().map(|d| ("[virtiofsd]", d.stderr_tail())));
        let lines = console::tails(&self.tail, !self.p.verbose, &children);
        self.report.extend(lines);
    }

    /// The VM failed: the console's last lines, then one line saying why.
    pub(super) fn fail(&mut self, what: &str) -> Attempt {
        Attempt::Finished(self.failed(what))
    }

    /// [`Self::fail`]'s status: a kernel that panicked or hit a BUG is the
    /// kernel's failure (120), the rest kdf's (125).
    pub(super) fn failed(&mut self, what: &str) -> i32 {
        self.print_tails();
        let diagnosis = console::diagnose(&self.tail.evidence());
        let kernel = diagnosis.as_deref().is_some_and(|d| d.starts_with("kernel "));
        self.note(&diagnosis.map_or_else(|| what.to_string(), |d| format!("{what}: {d}")));
        if kernel {
            status::KERNEL
        } else {
            status::FAILURE
        }
    }
}
