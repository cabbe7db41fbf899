//! `kdf run --result FILE`: the run's outcome as JSON for CI systems and
//! scripts. Keys (documented in the README): `status`, `meaning`,
//! `command_status` (null when the command did not end by itself),
//! `kernel_release`, `accel`, `timings` (`host`: seconds since kdf started
//! at each step; `guest`: kernel uptime at kdf-init's steps), `modules`
//! (`name`, `params`, `loaded`, `error`), `splats` (`title`, `lines`,
//! `allowed`).

use serde_json::{json, Value};

use super::prepare::Prepared;
use super::splat::Splat;
use super::timings::Timings;
use super::verdict::KernelLog;
use crate::status;
use crate::vm::qemu::Accel;

/// How the run ended, as the main loop saw it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: i32,
    pub command_status: Option<i32>,
    pub release: Option<String>,
}

/// Gathers the report from the run's parts and writes it to `path`.
pub fn write(
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
        accel: format!("{accel:?}").to_lowercase(),
        host_timings,
        guest_timings,
        modules: modules.collect(),
        splats: kernel.splats().to_vec(),
    };
    std::fs::write(path, to_json(&report))
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
    pub accel: String,
    pub host_timings: Vec<(String, f64)>,
    pub guest_timings: Vec<(String, f64)>,
    pub modules: Vec<ModuleOutcome>,
    pub splats: Vec<Splat>,
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
            accel: "tcg".into(),
            host_timings: vec![("qemu started".into(), 0.0151234567)],
            guest_timings: vec![("init".into(), 0.4)],
            modules: vec![ModuleOutcome { name: "m".into(), params: "a=1".into(), error: None }],
            splats: vec![Splat {
                lines: vec!["WARNING: x \"quoted\"".into(), "---[ end trace".into()],
                allowed: false,
            }],
        };
        let v: Value = serde_json::from_str(&to_json(&r)).unwrap();
        assert_eq!(v["status"], 122);
        assert_eq!(v["meaning"], status::meaning(122));
        assert_eq!(v["command_status"], 0);
        assert_eq!(v["kernel_release"], "7.3.4");
        assert_eq!(v["timings"]["host"]["qemu started"], 0.015123);
        assert_eq!(v["modules"][0]["loaded"], true);
        assert_eq!(v["splats"][0]["title"], "WARNING: x \"quoted\"");
        assert_eq!(v["splats"][0]["lines"].as_array().unwrap().len(), 2);
        let empty: Value = serde_json::from_str(&to_json(&Report::default())).unwrap();
        assert!(empty["command_status"].is_null() && empty["splats"].as_array().unwrap().is_empty());
    }
}
