//! What the guest kernel said during a run, and what it does to the run's
//! status: splats in its log (122), a splat taint with no splat found (122),
//! a `--module` that did not load or unload (123). Pure: messages in, report
//! lines and a status out.

use super::ktap::Ktap;
use super::splat::{self, Scanner};
use crate::status;

/// What kdf puts before the guest kernel's lines in its report.
pub const KERNEL_PREFIX: &str = "[kernel] ";

/// When the KUnit summary is worth a line on stderr (which is otherwise the
/// command's): a kernel with KUnit runs its built-in suites at every boot
/// (Rust's own, at least), and a passing run says nothing about them unless
/// the user asked (`--ktap`, `--kunit-filter`) or loaded a module whose
/// suite ran. A failure is always said.
#[derive(Debug, Clone, Default)]
pub struct KunitInterest {
    pub asked: bool,
    /// The `--module` names.
    pub modules: Vec<String>,
}

#[derive(Debug, Default)]
pub struct KernelLog {
    splats: Scanner,
    /// KUnit's results, when the kernel ran tests.
    pub ktap: Ktap,
    /// The taint flags when the command started and when it ended.
    taints: Vec<u64>,
    module_failed: bool,
    /// `(module, "load: error")` for each failure.
    pub module_errors: Vec<(String, String)>,
}

impl KernelLog {
    pub fn new(allow: Vec<regex::Regex>) -> Self {
        KernelLog { splats: Scanner::new(allow), ..Default::default() }
    }

    /// `/dev/kmsg` records.
    pub fn records(&mut self, records: &[Vec<u8>]) {
        for r in records {
            let text = splat::record_text(r);
            self.splats.line(&text);
            self.ktap.line(&text);
        }
    }

    pub fn tainted(&mut self, flags: u64) {
        self.taints.push(flags);
    }

    /// A `--module` that failed: the report's lines (its kernel lines, unless
    /// they hold a splat, which is reported as one, once).
    pub fn module_failed(&mut self, name: &str, action: &str, error: &str, log: &[String]) -> Vec<String> {
        self.module_failed = true;
        self.module_errors.push((name.to_string(), format!("{action}: {error}")));
        let mut out = vec![format!("kdf: cannot {action} module {name}: {error}")];
        if !log.iter().any(|l| splat::opens_splat(l)) {
            out.extend(log.iter().map(|l| format!("{KERNEL_PREFIX}{l}")));
        }
        out
    }

    /// Every splat seen (after [`Self::verdict`], also the last one).
    pub fn splats(&self) -> &[super::splat::Splat] {
        &self.splats.splats
    }

    /// The run's status given the command's, and the report's lines: a failed
    /// KUnit test or unmet plan makes 121, a splat or a splat taint 122 (also
    /// when a module's init crashed), a module that did not unload 123; a
    /// non-zero status of the command's own wins. Allowed splats are reported
    /// only when `verbose`.
    pub fn verdict(&mut self, status: i32, verbose: bool, kunit: &KunitInterest) -> (i32, Vec<String>) {
        self.splats.close();
        let mut report = Vec::new();
        for splat in self.splats.splats.iter().filter(|s| !s.allowed || verbose) {
            let what = if splat.allowed { "kernel splat (allowed)" } else { "kernel splat" };
            report.push(format!("kdf: {what}: {}", splat.title()));
            report.extend(splat.lines.iter().map(|l| format!("{KERNEL_PREFIX}{l}")));
        }
        let failing = self.splats.failing().count();
        let taints = match (self.taints.first(), self.taints.last()) {
            (Some(&before), Some(&after)) if failing == 0 => splat::new_taints(before, after),
            _ => Vec::new(),
        };
        if !taints.is_empty() {
            report.push(format!("kdf: the kernel was tainted {} during the run", taints.join(", ")));
        }
        self.ktap.finish();
        let from_modules =
            self.ktap.suites.iter().any(|s| s.module.as_ref().is_some_and(|m| kunit.modules.contains(m)));
        if self.ktap.seen() && (self.ktap.failed() || verbose || kunit.asked || from_modules) {
            report.push(format!("kdf: {}", self.ktap.summary()));
        }
        let splatted = failing > 0 || !taints.is_empty();
        let status = match status {
            0 if self.ktap.failed() => status::KUNIT,
            0 | status::MODULE if splatted => status::SPLAT,
            0 if self.module_failed => status::MODULE,
            s => s,
        };
        (status, report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lines: &[&str]) -> KernelLog {
        let mut k = KernelLog::new(Vec::new());
        let records: Vec<Vec<u8>> = lines.iter().map(|l| format!("4,1,1,-;{l}").into_bytes()).collect();
        k.records(&records);
        k
    }

    #[test]
    fn a_clean_log_changes_nothing() {
        let (status, report) =
            log(&["hello", "Run /init as init process"]).verdict(0, false, &KunitInterest::default());
        assert_eq!((status, report.len()), (0, 0));
    }

    #[test]
    fn a_splat_fails_a_command_that_succeeded_but_its_own_failure_wins() {
        let lines = ["WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1", "---[ end trace 0 ]---"];
        let (status, report) = log(&lines).verdict(0, false, &KunitInterest::default());
        assert_eq!(status, status::SPLAT);
        assert_eq!(report[0], "kdf: kernel splat: WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1");
        assert_eq!(report[1], "[kernel] WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1");
        assert_eq!(log(&lines).verdict(3, false, &KunitInterest::default()).0, 3);
    }

    #[test]
    fn a_crash_in_a_modules_init_is_a_splat_reported_once() {
        let mut k = log(&["BUG: kernel NULL pointer dereference, address: 0", "---[ end trace 0 ]---"]);
        let lines = k.module_failed("m", "load", "killed", &["BUG: kernel NULL pointer dereference".into()]);
        assert_eq!(lines, ["kdf: cannot load module m: killed"], "the splat says the rest");
        assert_eq!(k.verdict(status::MODULE, false, &KunitInterest::default()).0, status::SPLAT);
    }

    #[test]
    fn a_module_that_does_not_unload_fails_a_command_that_succeeded() {
        let mut k = log(&[]);
        let lines = k.module_failed("m", "unload", "Resource busy", &["m: still in use".into()]);
        assert_eq!(lines, ["kdf: cannot unload module m: Resource busy", "[kernel] m: still in use"]);
        assert_eq!(k.verdict(0, false, &KunitInterest::default()).0, status::MODULE);
    }

    #[test]
    fn a_warning_taint_without_a_splat_in_the_log_still_fails() {
        let mut k = log(&[]);
        k.tainted(1 << 12);
        k.tainted((1 << 12) | (1 << 9));
        let (status, report) = k.verdict(0, false, &KunitInterest::default());
        assert_eq!(status, status::SPLAT);
        assert_eq!(report, ["kdf: the kernel was tainted W (a warning) during the run"]);
    }

    #[test]
    fn an_allowed_splat_is_shown_only_when_verbose() {
        let lines = ["WARNING: CPU: 0 PID: 1 at x.c:1 known_issue+0x0", "---[ end trace 0 ]---"];
        let allow = || vec![regex::Regex::new("known_issue").unwrap()];
        let mut k = KernelLog::new(allow());
        k.records(&lines.iter().map(|l| format!("4,1,1,-;{l}").into_bytes()).collect::<Vec<_>>());
        let (status, report) = k.verdict(0, false, &KunitInterest::default());
        assert_eq!((status, report.len()), (0, 0));
        let mut k = KernelLog::new(allow());
        k.records(&lines.iter().map(|l| format!("4,1,1,-;{l}").into_bytes()).collect::<Vec<_>>());
        assert!(
            k.verdict(0, true, &KunitInterest::default()).1[0].starts_with("kdf: kernel splat (allowed): ")
        );
    }

    #[test]
    fn a_failing_kunit_case_fails_a_command_that_succeeded_with_121() {
        let mut k =
            log(&["KTAP version 1", "1..1", "    # Subtest: s", "    1..1", "    not ok 1 c", "not ok 1 s"]);
        let (status, report) = k.verdict(0, false, &KunitInterest::default());
        assert_eq!(status, status::KUNIT);
        assert_eq!(report, ["kdf: KUnit: 1 tests, 0 passed, 0 skipped, 1 failed"]);
        let passing = [
            "KTAP version 1",
            "1..1",
            "    # Subtest: s",
            "    # module: m",
            "    1..1",
            "    ok 1 c",
            "ok 1 s",
        ];
        assert_eq!(
            log(&passing).verdict(0, false, &KunitInterest::default()),
            (0, Vec::new()),
            "built-in, quiet"
        );
        let asked = KunitInterest { asked: false, modules: vec!["m".into()] };
        assert_eq!(
            log(&passing).verdict(0, false, &asked).1,
            ["kdf: KUnit: 1 tests, 1 passed, 0 skipped, 0 failed"]
        );
    }
}
