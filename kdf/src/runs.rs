//! The running VMs of this user: each `kdf run` leaves a record
//! (`record.json`) in its runtime directory, so `kdf gdb`, `kdf attach` and
//! friends find "the VM started from this directory" without the user naming
//! ports or sockets. A record lives exactly as long as its run's lock is held.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::cache;
use crate::errors::hinted;
use crate::runtime::{self, RuntimeDir};

const FILE: &str = "record.json";

/// What another kdf command needs to know about a running VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub pid: u32,
    /// The directory `kdf run` was started from (canonical).
    pub cwd: PathBuf,
    /// The kernel file the user chose, and its release where known.
    pub kernel: PathBuf,
    pub release: Option<String>,
    /// The run's private runtime directory (its sockets live there).
    pub dir: PathBuf,
    /// The gdb stub's TCP port on 127.0.0.1 (`-d`).
    pub gdb_port: Option<u16>,
    /// The QMP monitor's Unix socket (`kdf qmp`, `kdf dump`).
    pub qmp: Option<PathBuf>,
    /// The kernel's unstripped `vmlinux`, where one was found (`-d`).
    pub vmlinux: Option<PathBuf>,
    /// The `--module` files on the host: (module name, file).
    pub modules: Vec<(String, PathBuf)>,
    /// The attach channel's socket (`kdf attach`, `kdf sysrq`).
    pub attach: Option<PathBuf>,
    /// The guest's architecture (`x86_64`, `arm64`; absent in older records):
    /// which gdb `kdf gdb` needs.
    pub arch: Option<String>,
}

impl Record {
    pub fn to_json(&self) -> Value {
        json!({
            "pid": self.pid,
            "cwd": self.cwd,
            "kernel": self.kernel,
            "release": self.release,
            "dir": self.dir,
            "gdb_port": self.gdb_port,
            "qmp": self.qmp,
            "vmlinux": self.vmlinux,
            "modules": self.modules.iter().map(|(name, file)| json!({"name": name, "file": file})).collect::<Vec<_>>(),
            "attach": self.attach,
            "arch": self.arch,
        })
    }

    pub fn from_json(v: &Value) -> Option<Record> {
        let path = |key: &str| v.get(key)?.as_str().map(PathBuf::from);
        Some(Record {
            pid: u32::try_from(v.get("pid")?.as_u64()?).ok()?,
            cwd: path("cwd")?,
            kernel: path("kernel")?,
            release: v.get("release").and_then(Value::as_str).map(str::to_owned),
            dir: path("dir")?,
            gdb_port: v.get("gdb_port").and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok()),
            qmp: v.get("qmp").and_then(Value::as_str).map(PathBuf::from),
            vmlinux: path("vmlinux"),
            modules: v
                .get("modules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|m| {
                    Some((m.get("name")?.as_str()?.to_owned(), PathBuf::from(m.get("file")?.as_str()?)))
                })
                .collect(),
            attach: v.get("attach").and_then(Value::as_str).map(PathBuf::from),
            arch: v.get("arch").and_then(Value::as_str).map(str::to_owned),
        })
    }

    /// One line naming the run, for lists in error messages.
    pub fn describe(&self) -> String {
        let port = self.gdb_port.map(|p| format!(", gdb port {p}")).unwrap_or_default();
        format!("pid {} (kernel {}{port})", self.pid, self.kernel.display())
    }
}

/// Publishes `record` in `runtime` (atomically: readers never see half a file).
pub fn publish(runtime: &RuntimeDir, record: &Record) -> Result<()> {
    cache::write_atomic(&runtime.path().join(FILE), record.to_json().to_string().as_bytes())
}

/// The records of every live run of this user.
pub fn live() -> Result<Vec<Record>> {
    let base = runtime::base()?;
    Ok(runtime::live_dirs(&base)
        .into_iter()
        .filter_map(|dir| std::fs::read(dir.join(FILE)).ok())
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
        .filter_map(|v: Value| Record::from_json(&v))
        .filter(|r| Path::new(&format!("/proc/{}", r.pid)).exists())
        .collect())
}

/// Which run a command means: `--pid`, else the one started from `cwd`.
pub fn choose(records: Vec<Record>, cwd: &Path, pid: Option<u32>) -> Result<Record> {
    let mut mine: Vec<Record> = match pid {
        Some(pid) => records.into_iter().filter(|r| r.pid == pid).collect(),
        None => records.into_iter().filter(|r| r.cwd == cwd).collect(),
    };
    match (mine.len(), pid) {
        (1, _) => Ok(mine.remove(0)),
        (0, Some(pid)) => Err(hinted(format!("no kdf run with pid {pid} is running"), "`kdf ps` lists them")),
        (0, None) => Err(hinted(
            format!("no kdf run started from {} is running", cwd.display()),
            "start one here with `kdf run`, or pick one with --pid (`kdf ps` lists them)",
        )),
        _ => {
            let list: Vec<String> = mine.iter().map(|r| format!("  {}", r.describe())).collect();
            bail!(
                "{} kdf runs were started from {}; pick one with --pid:\n{}",
                mine.len(),
                cwd.display(),
                list.join("\n")
            )
        }
    }
}

/// The current directory as records name it (canonical).
pub fn this_dir() -> Result<PathBuf> {
    let cwd = std::env::current_dir().context("failed to read the current directory")?;
    Ok(cwd.canonicalize().unwrap_or(cwd))
}

/// The run started from the current directory, or the one `pid` names.
pub fn find(pid: Option<u32>) -> Result<Record> {
    choose(live()?, &this_dir()?, pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pid: u32, cwd: &str) -> Record {
        Record {
            pid,
            cwd: cwd.into(),
            kernel: "/boot/vmlinuz-6.1".into(),
            release: Some("6.1".into()),
            dir: format!("/run/user/0/kdf/run-{pid}-0").into(),
            gdb_port: Some(40000 + pid as u16),
            qmp: Some(format!("/run/user/0/kdf/run-{pid}-0/qmp.sock").into()),
            vmlinux: Some("/usr/lib/debug/boot/vmlinux-6.1".into()),
            modules: vec![("hello".into(), "/src/m/hello.ko".into())],
            attach: Some(format!("/run/user/0/kdf/run-{pid}-0/attach.sock").into()),
            arch: Some("arm64".into()),
        }
    }

    #[test]
    fn a_record_survives_its_json() {
        let r = record(7, "/src/linux");
        assert_eq!(Record::from_json(&r.to_json()), Some(r.clone()));
        let bare = Record {
            release: None,
            gdb_port: None,
            qmp: None,
            vmlinux: None,
            modules: Vec::new(),
            attach: None,
            arch: None,
            ..r
        };
        assert_eq!(Record::from_json(&bare.to_json()), Some(bare));
        assert_eq!(Record::from_json(&json!({"pid": 1})), None);
    }

    #[test]
    fn the_run_of_this_directory_or_of_a_pid_is_chosen() {
        let all = || vec![record(1, "/a"), record(2, "/b"), record(3, "/b")];
        assert_eq!(choose(all(), Path::new("/a"), None).unwrap().pid, 1);
        assert_eq!(choose(all(), Path::new("/b"), Some(3)).unwrap().pid, 3);
        let none = choose(all(), Path::new("/c"), None).unwrap_err().to_string();
        assert!(none.contains("no kdf run started from /c"), "{none}");
        let two = choose(all(), Path::new("/b"), None).unwrap_err().to_string();
        assert!(two.contains("2 kdf runs") && two.contains("pid 2") && two.contains("pid 3"), "{two}");
        assert!(two.contains("--pid"), "{two}");
    }

    #[test]
    fn only_runs_whose_lock_is_held_are_live() {
        let base = tempfile::tempdir().unwrap();
        let live = runtime::create_in(base.path()).unwrap();
        let record = Record { dir: live.path().to_path_buf(), pid: std::process::id(), ..record(0, "/x") };
        publish(&live, &record).unwrap();
        std::fs::create_dir(base.path().join("run-999-0")).unwrap();
        std::fs::write(base.path().join("run-999-0").join(FILE), record.to_json().to_string()).unwrap();
        std::fs::write(base.path().join("run-999-0.lock"), "").unwrap();
        assert_eq!(runtime::live_dirs(base.path()), [live.path().to_path_buf()]);
    }
}
