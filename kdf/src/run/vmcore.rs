//! `--vmcore`: when the guest kernel has panicked (it waits, `panic=0`), a
//! thread asks QEMU over kdf's own QMP monitor to write the guest's memory
//! into the file, and the run's report says where it is and how to open it.

use std::fs::File;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::hardware::Vmcore;
use crate::qmp::{self, Written};

/// What the console shows once a panic is complete: with `panic=0` the
/// kernel prints this after the backtrace, stops the other CPUs' output and
/// spins, so the memory is the panic's.
pub const PANIC_END: &str = "---[ end Kernel panic - not syncing:";

/// How long one wait on QEMU may take (the dump of a large guest under TCG
/// is the long one).
const QMP_TIMEOUT: Duration = Duration::from_secs(600);

/// Writes the dump on a thread, then calls `done` there (the main loop
/// hears it as `Event::Dumped`).
pub fn start(qmp: UnixStream, path: PathBuf, done: impl FnOnce(Result<Written, String>) + Send + 'static) {
    std::thread::spawn(move || {
        let result = write(qmp, &path).map_err(|e| format!("{e:#}"));
        if result.is_err() {
            // Half a dump is no dump.
            let _ = std::fs::remove_file(&path);
        }
        done(result);
    });
}

fn write(qmp: UnixStream, path: &Path) -> anyhow::Result<Written> {
    use anyhow::Context;
    let file = File::create(path).with_context(|| format!("failed to create {}", path.display()))?;
    let mut client = qmp::Client::handshake(qmp, Some(QMP_TIMEOUT))?;
    let format = client.dump(&file)?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(Written { format, bytes })
}

/// `12.3 MiB`.
pub fn size(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// kdf's lines about the dump, after the panic's.
pub fn report(vmcore: &Vmcore, result: &Result<Written, String>) -> Vec<String> {
    let path = vmcore.path.display();
    let written = match result {
        Ok(w) => w,
        Err(why) => return vec![format!("kdf: could not write a vmcore to {path}: {why}")],
    };
    let symbols = vmcore.symbols.as_ref().map_or("vmlinux".into(), |p| p.display().to_string());
    let mut out = vec![format!(
        "kdf: the guest's memory at the panic is in {path} ({}, {}): drgn -c {path} -s {symbols}, or crash {symbols} {path}",
        written.format,
        size(written.bytes)
    )];
    if vmcore.symbols.is_none() {
        out.push("kdf: vmlinux: the kernel's image with debug symbols (the build directory's vmlinux, or the distribution's debug package)".into());
    }
    if let Some(why) = &vmcore.no_vmcoreinfo {
        out.push(format!("kdf: the dump has no vmcoreinfo: {why}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vmcore(symbols: Option<&str>, no_vmcoreinfo: Option<&str>) -> Vmcore {
        Vmcore {
            path: "/w/core".into(),
            symbols: symbols.map(PathBuf::from),
            no_vmcoreinfo: no_vmcoreinfo.map(String::from),
        }
    }

    #[test]
    fn the_report_says_where_the_dump_is_and_how_to_open_it() {
        let ok = Ok(Written { format: "kdump-zlib", bytes: 3 << 20 });
        assert_eq!(
            report(&vmcore(Some("/b/vmlinux"), None), &ok),
            ["kdf: the guest's memory at the panic is in /w/core (kdump-zlib, 3.0 MiB): \
              drgn -c /w/core -s /b/vmlinux, or crash /b/vmlinux /w/core"]
        );
        let lines = report(&vmcore(None, Some("no fw_cfg")), &ok);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].contains("drgn -c /w/core -s vmlinux"));
        assert_eq!(lines[2], "kdf: the dump has no vmcoreinfo: no fw_cfg");
        assert_eq!(
            report(&vmcore(None, None), &Err("QEMU closed the QMP connection".into())),
            ["kdf: could not write a vmcore to /w/core: QEMU closed the QMP connection"]
        );
    }

    #[test]
    fn a_dump_through_a_qemu_that_refuses_leaves_no_file() {
        use std::io::{BufRead, BufReader, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("core");
        let (ours, theirs) = UnixStream::pair().unwrap();
        std::thread::spawn(move || {
            let mut w = theirs.try_clone().unwrap();
            let mut lines = BufReader::new(theirs).lines();
            w.write_all(b"{\"QMP\": {}}\n").unwrap();
            let _ = lines.next();
            w.write_all(b"{\"return\": {}}\n").unwrap();
            let _ = lines.next();
            w.write_all(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"no dump here\"}}\n").unwrap();
        });
        let (tx, rx) = std::sync::mpsc::channel();
        start(ours, path.clone(), move |r| tx.send(r).unwrap());
        match rx.recv_timeout(Duration::from_secs(30)).unwrap() {
            Err(why) => assert!(why.contains("no dump here"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(!path.exists());
    }
}
