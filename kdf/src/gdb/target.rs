//! Which VM `kdf gdb` attaches to: the run started from this directory (its
//! record, [`crate::runs`]), the one `--pid` names, or the one whose stub is
//! on `--port`; waiting for the record while `kdf run -d` is still starting.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::errors::hinted;
use crate::runs::Record;

/// What to attach to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub port: u16,
    /// The run's record (none for a bare `--port` that no run of kdf has).
    pub record: Option<Record>,
}

/// How often to look for the run's record again.
const POLL: Duration = Duration::from_millis(100);

/// Picks the run among the live `records`; `Ok(None)`: none (yet).
pub fn pick(records: Vec<Record>, cwd: &Path, pid: Option<u32>, port: Option<u16>) -> Result<Option<Record>> {
    let mine: Vec<Record> = records
        .into_iter()
        .filter(|r| match (pid, port) {
            (Some(pid), _) => r.pid == pid,
            (None, Some(port)) => r.gdb_port == Some(port),
            (None, None) => r.cwd == cwd,
        })
        .collect();
    match mine.len() {
        0 => Ok(None),
        1 => Ok(mine.into_iter().next()),
        n => {
            let list: Vec<String> = mine.iter().map(|r| format!("  {}", r.describe())).collect();
            bail!(
                "{n} kdf runs were started from {}; pick one with --port or --pid:\n{}",
                cwd.display(),
                list.join("\n")
            )
        }
    }
}

/// The target, waiting up to `deadline` for the run's record to appear
/// among the `live` ones (`runs::live`).
pub fn find(
    live: impl Fn() -> Result<Vec<Record>>,
    cwd: &Path,
    pid: Option<u32>,
    port: Option<u16>,
    deadline: Instant,
) -> Result<Target> {
    loop {
        let found = pick(live()?, cwd, pid, port)?;
        match (found, port) {
            (Some(record), _) => return with_port(record, port),
            // A stub kdf did not start (or one whose run has ended).
            (None, Some(port)) if pid.is_none() => return Ok(Target { port, record: None }),
            (None, _) if Instant::now() + POLL >= deadline => {
                return Err(match pid {
                    Some(pid) => hinted(format!("no kdf run with pid {pid} is running"), "kdf ps lists them"),
                    None => hinted(
                        format!("no kdf run started from {} is running", cwd.display()),
                        "start one here with `kdf run -d`, or cd to where it was started (kdf ps lists them)",
                    ),
                })
            }
            (None, _) => std::thread::sleep(POLL),
        }
    }
}

fn with_port(record: Record, port: Option<u16>) -> Result<Target> {
    match record.gdb_port.or(port) {
        Some(port) => Ok(Target { port, record: Some(record) }),
        None => Err(hinted(
            format!("the kdf run {} has no gdb stub", record.describe()),
            "start it with `kdf run -d` (with --debug-wait to stop it before the kernel runs)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pid: u32, cwd: &str, port: Option<u16>) -> Record {
        Record {
            pid,
            cwd: cwd.into(),
            kernel: "/b/vmlinux".into(),
            release: None,
            dir: "/run/kdf/x".into(),
            gdb_port: port,
            qmp: None,
            vmlinux: None,
            modules: Vec::new(),
            attach: None,
            arch: None,
        }
    }

    fn all() -> Vec<Record> {
        vec![record(1, "/a", Some(41000)), record(2, "/b", Some(42000)), record(3, "/b", Some(43000))]
    }

    #[test]
    fn the_run_of_this_directory_is_picked_and_two_are_listed() {
        assert_eq!(pick(all(), Path::new("/a"), None, None).unwrap().unwrap().pid, 1);
        assert_eq!(pick(all(), Path::new("/c"), None, None).unwrap(), None);
        let err = pick(all(), Path::new("/b"), None, None).unwrap_err().to_string();
        assert!(err.starts_with("2 kdf runs were started from /b; pick one with --port or --pid"), "{err}");
        assert!(err.contains("gdb port 42000") && err.contains("gdb port 43000"), "{err}");
    }

    #[test]
    fn a_port_or_a_pid_picks_one() {
        assert_eq!(pick(all(), Path::new("/b"), None, Some(43000)).unwrap().unwrap().pid, 3);
        assert_eq!(pick(all(), Path::new("/b"), Some(2), None).unwrap().unwrap().pid, 2);
        assert_eq!(pick(all(), Path::new("/b"), None, Some(1)).unwrap(), None);
    }

    #[test]
    fn a_bare_port_needs_no_run_and_a_run_without_a_stub_is_refused() {
        let live = || Ok(all());
        let t = find(live, Path::new("/nowhere"), None, Some(1), Instant::now()).unwrap();
        assert_eq!(t, Target { port: 1, record: None });
        let t = find(live, Path::new("/a"), None, None, Instant::now()).unwrap();
        assert_eq!((t.port, t.record.unwrap().pid), (41000, 1));
        let err = find(live, Path::new("/c"), None, None, Instant::now()).unwrap_err();
        assert_eq!(err.to_string(), "no kdf run started from /c is running");
        let err = with_port(record(9, "/a", None), None).unwrap_err();
        assert!(err.to_string().contains("has no gdb stub"), "{err}");
    }
}
