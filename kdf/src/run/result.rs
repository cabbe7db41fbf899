//! `kdf run --result FILE`: the run's outcome as JSON for CI systems and
//! scripts. Keys (documented in the README): `status`, `meaning`,
//! `command_status` (null when the command did not end by itself),
//! `kernel_release`, `accel`, `timings` (`host`: seconds since kdf started
//! at each step; `guest`: kernel uptime at kdf-init's steps), `modules`
//! (`name`, `params`, `loaded`, `error`), `splats` (`title`, `lines`,
//! `allowed`), `kunit`, and `error` (why kdf refused or failed before the
//! run had an outcome, e.g. a `--module` built for another kernel; null
//! otherwise).

use serde_json::{json, Value};

use super::ktap::{Counts, Suite as KunitSuite};
use super::prepare::Prepared;
use super::splat::Splat;
use super::timings::Timings;
use super::verdict::KernelLog;
use crate::errors;
use crate::status;
use crate::vm::qemu::Accel;

/// How the run ended, as the main loop saw it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: i32,
    pub command_status: Option<i32>,
    pub release: Option<String>,
}

/// Writes `--result` and `--ktap` where asked; why one could not be written.
pub fn write_files(
    p: &Prepared,
    accel: Accel,
    timings: &Timings,
    kernel: &KernelLog,
    outcome: Outcome,
) -> Option<String> {
    let mut failed = None;
    if let Some(path) = &p.result {
        let written = write(path, p, accel, timings, kernel, outcome);
        failed = written.err().map(|e| format!("failed to write --result {}: {e}", path.display()));
    }
    if let Some(path) = &p.ktap {
        let written = write_ktap(path, kernel);
        failed = failed.or(written.err().map(|e| format!("failed to write --ktap {}: {e}", path.display())));
    }
    failed
}

/// Gathers the report from the run's parts and writes it to `path`.
fn write(
    path: &std::path::Path,
    p: &Prepared,
    accel: Accel,
    timings: &Timings,
    kernel: &KernelLog,
    outcome: Outcome,
) -> std::io::Result<()> {
    let (host_timings, guest_timings) = timings.seconds();
    let errors = &kernel.module_errors;
    let modules = p.plan.user_modules.iter().map(|m| ModuleOutcome {
        name: m.name.clone(),
        params: m.params.clone(),
        error: errors.iter().find(|(n, _)| n == &m.name).map(|(_, e)| e.clone()),
    });
    let report = Report {
        status: outcome.status,
        command_status: outcome.command_status,
        kernel_release: outcome.release,
        accel: Some(format!("{accel:?}").to_lowercase()),
        host_timings,
        guest_timings,
        modules: modules.collect(),
        splats: kernel.splats().to_vec(),
        kunit: kernel.ktap.seen().then(|| (kernel.ktap.counts, kernel.ktap.suites.clone())),
        error: None,
    };
    std::fs::write(path, to_json(&report))
}

/// `--result` of a run that ended in an error of kdf's (a refusal before
/// boot, a VM that could not start): its status and the error, the rest
/// empty.
pub fn refusal(err: &anyhow::Error) -> Report {
    Report { status: errors::exit_status(err), error: Some(format!("{err:#}")), ..Report::default() }
}

/// `--ktap FILE`: the KTAP lines alone, for `kunit.py parse` and CI tools.
pub fn write_ktap(path: &std::path::Path, kernel: &KernelLog) -> std::io::Result<()> {
    let mut text = kernel.ktap.document().join("\n");
    text.push('\n');
    std::fs::write(path, text)
}

/// One `--module` and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleOutcome {
    pub name: String,
    pub params: String,
    /// `None`: loaded (and unloaded); else the failing action and error.
    pub error: Option<String>,
}

/// Everything the result file says.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub status: i32,
    pub command_status: Option<i32>,
    pub kernel_release: Option<String>,
    /// None when kdf stopped before choosing one.
    pub accel: Option<String>,
    pub host_timings: Vec<(String, f64)>,
    pub guest_timings: Vec<(String, f64)>,
    pub modules: Vec<ModuleOutcome>,
    pub splats: Vec<Splat>,
    /// KUnit's counts and suites, when the kernel ran tests.
    pub kunit: Option<(Counts, Vec<KunitSuite>)>,
    /// kdf's own error, when the run ended in one.
    pub error: Option<String>,
}

fn pairs(v: &[(String, f64)]) -> Value {
    Value::Object(v.iter().map(|(k, s)| (k.clone(), json!((s * 1e6).round() / 1e6))).collect())
}

pub fn to_json(r: &Report) -> String {
    let value = json!({
        "status": r.status,
        "meaning": status::meaning(r.status),
        "command_status": r.command_status,
        "kernel_release": r.kernel_release,
        "accel": r.accel,
        "timings": { "host": pairs(&r.host_timings), "guest": pairs(&r.guest_timings) },
        "modules": r.modules.iter().map(|m| json!({
            "name": m.name,
            "params": m.params,
            "loaded": m.error.is_none(),
            "error": m.error,
        })).collect::<Vec<_>>(),
        "splats": r.splats.iter().map(|s| json!({
            "title": s.title(),
            "lines": s.lines,
            "allowed": s.allowed,
        })).collect::<Vec<_>>(),
        "kunit": r.kunit.as_ref().map(|(c, suites)| json!({
            "tests": c.total(),
            "passed": c.passed,
            "skipped": c.skipped,
            "failed": c.failed,
            "suites": suites.iter().map(|s| json!({
                "name": s.name,
                "module": s.module,
                "ok": s.ok,
                "passed": s.counts.passed,
                "skipped": s.counts.skipped,
                "failed": s.counts.failed,
            })).collect::<Vec<_>>(),
        })),
        "error": r.error,
    });
    let mut text = serde_json::to_string_pretty(&value).expect("a JSON value always serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_has_every_documented_key() {
        let r = Report {
            status: 122,
            command_status: Some(0),
            kernel_release: Some("7.3.4".into()),
            accel: Some("tcg".into()),
            host_timings: vec![("qemu started".into(), 0.0151234567)],
            guest_timings: vec![("init".into(), 0.4)],
            modules: vec![ModuleOutcome { name: "m".into(), params: "a=1".into(), error: None }],
            splats: vec![Splat {
                lines: vec!["WARNING: x \"quoted\"".into(), "---[ end trace".into()],
                allowed: false,
            }],
            kunit: None,
            error: None,
        };
        let v: Value = serde_json::from_str(&to_json(&r)).unwrap();
        assert!(v["error"].is_null(), "a run with an outcome has no error");
        assert_eq!(v["status"], 122);
        assert_eq!(v["meaning"], status::meaning(122));
        assert_eq!(v["command_status"], 0);
        assert_eq!(v["kernel_release"], "7.3.4");
        assert_eq!(v["timings"]["host"]["qemu started"], 0.015123);
        assert_eq!(v["modules"][0]["loaded"], true);
        assert_eq!(v["splats"][0]["title"], "WARNING: x \"quoted\"");
        assert_eq!(v["splats"][0]["lines"].as_array().unwrap().len(), 2);
        let mut with_kunit = r.clone();
        let suite = KunitSuite {
            name: "example".into(),
            ok: true,
            counts: Counts { passed: 3, failed: 0, skipped: 1 },
            module: Some("kunit_example_test".into()),
        };
        with_kunit.kunit = Some((suite.counts, vec![suite]));
        let v: Value = serde_json::from_str(&to_json(&with_kunit)).unwrap();
        assert_eq!(
            (v["kunit"]["tests"].as_u64(), v["kunit"]["suites"][0]["name"].as_str()),
            (Some(4), Some("example"))
        );
        let empty: Value = serde_json::from_str(&to_json(&Report::default())).unwrap();
        assert!(empty["kunit"].is_null());
        assert!(empty["command_status"].is_null() && empty["splats"].as_array().unwrap().is_empty());
    }

    #[test]
    fn a_refusal_has_its_status_meaning_and_error() {
        let err =
            crate::errors::hinted_status("m.ko was built for 7.3.4, the kernel is 6.1.0", "rebuild", 123);
        let v: Value = serde_json::from_str(&to_json(&refusal(&err.context("--module")))).unwrap();
        assert_eq!(
            (v["status"].as_i64(), v["meaning"].as_str()),
            (Some(123), Some(status::meaning(123).as_str()))
        );
        assert_eq!(v["error"], "--module: m.ko was built for 7.3.4, the kernel is 6.1.0");
        assert!(v["command_status"].is_null() && v["accel"].is_null() && v["kunit"].is_null());
        assert!(v["modules"].as_array().unwrap().is_empty());
        let v: Value = serde_json::from_str(&to_json(&refusal(&anyhow::anyhow!("no qemu")))).unwrap();
        assert_eq!(v["status"], status::FAILURE);
    }
}
