//! `kdf sysrq KEY`: the key is written to `/proc/sysrq-trigger` (which works
//! whatever `kernel.sysrq` says), and the kernel log records it produced are
//! read back from `/dev/kmsg` for the host. Most handlers (`t`, `w`, `m`, ...)
//! log synchronously, inside the write, so the records are all there when it
//! returns. The console shows only records below its loglevel (kdf boots
//! with `loglevel=4` unless `-v`), and the task dumps are `KERN_INFO`: the
//! records it hid are written to the console here, so the console (and
//! `--console-log`) has the whole answer.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;

use kdf_proto::ToHost;

use crate::kmsg::is_kernel_record;

/// The most records sent back (a `t` on a busy guest logs thousands).
const MAX_RECORDS: usize = 20_000;

/// One `/dev/kmsg` record: `PRI,SEQ,USEC,FLAGS;TEXT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub level: u32,
    pub usec: u64,
    pub text: String,
}

impl Record {
    /// The record's fields; continuation lines (` KEY=VALUE`) are dropped,
    /// and the kernel's `\xNN` escapes (a multi-line message's newlines)
    /// decoded.
    pub fn parse(raw: &[u8]) -> Option<Record> {
        let raw = String::from_utf8_lossy(raw);
        let (head, text) = raw.split_once(';')?;
        let mut fields = head.split(',');
        let pri: u32 = fields.next()?.parse().ok()?;
        let usec: u64 = fields.nth(1)?.parse().ok()?;
        let text = unescape(text.lines().next().unwrap_or_default());
        Some(Record { level: pri & 7, usec, text })
    }

    /// The line as the kernel prints it on a console with `printk.time`.
    pub fn console_line(&self) -> String {
        format!("[{:5}.{:06}] {}", self.usec / 1_000_000, self.usec % 1_000_000, self.text)
    }
}

/// `/dev/kmsg` writes bytes below 32 (but tab), 127 and a backslash as
/// `\xNN`.
fn unescape(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let hex =
            bytes.get(i + 2..i + 4).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], bytes.get(i + 1), hex) {
            (b'\\', Some(b'x'), Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The console's loglevel: the first field of `/proc/sys/kernel/printk`.
pub fn console_loglevel(printk: &str) -> Option<u32> {
    printk.split_whitespace().next()?.parse().ok()
}

/// Whether the console left `record` out: its level is not below the
/// console's. SysRq's own lines (`sysrq: Show Blocked State`, its help) are
/// always printed, whatever their level.
pub fn hidden_on_console(record: &Record, console_level: Option<u32>) -> bool {
    console_level.is_some_and(|level| record.level >= level) && !record.text.starts_with("sysrq: ")
}

/// Sends `key` and collects what it logged; the answer for the host.
pub fn trigger(key: u8) -> ToHost {
    // Opened before the write and moved to the end of the log: what is read
    // afterwards is what the key produced.
    let mut log = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open("/dev/kmsg").ok();
    if let Some(f) = log.as_mut() {
        let _ = f.seek(SeekFrom::End(0));
    }
    if let Err(e) = std::fs::write("/proc/sysrq-trigger", [key]) {
        let error = format!("cannot write /proc/sysrq-trigger: {e} (is CONFIG_MAGIC_SYSRQ off?)");
        return ToHost::SysrqDone { log: Vec::new(), error: Some(error) };
    }
    let records = log.map(read_records).unwrap_or_default();
    let printk = std::fs::read_to_string("/proc/sys/kernel/printk").unwrap_or_default();
    let hidden: String = records
        .iter()
        .filter(|r| hidden_on_console(r, console_loglevel(&printk)))
        .map(|r| r.console_line() + "\n")
        .collect();
    if !hidden.is_empty() {
        // One write, so the lines stay together on the console.
        let _ = std::io::stderr().write_all(hidden.as_bytes());
    }
    ToHost::SysrqDone { log: records.into_iter().map(|r| r.text).collect(), error: None }
}

/// The kernel's records now in the log, up to [`MAX_RECORDS`].
fn read_records(mut file: File) -> Vec<Record> {
    let mut records = Vec::new();
    let mut buf = vec![0u8; 8192];
    while records.len() < MAX_RECORDS {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) if is_kernel_record(&buf[..n]) => records.extend(Record::parse(&buf[..n])),
            Ok(_) => {}
            // Overwritten before it was read: go on with the next one.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_gives_its_level_time_and_first_line() {
        let r = Record::parse(b"6,1234,4472263,-;task:python3 state:D stack:0\n SUBSYSTEM=x\n").unwrap();
        assert_eq!(r, Record { level: 6, usec: 4_472_263, text: "task:python3 state:D stack:0".into() });
        assert_eq!(r.console_line(), "[    4.472263] task:python3 state:D stack:0");
        assert_eq!(Record::parse(b"0,1,0,c;").unwrap().text, "");
        assert_eq!(Record::parse(b"garbage"), None);
        assert_eq!(Record::parse(b"x,1,2,-;t"), None);
        let multi = Record::parse(b"4,9,1,-;Mem-Info:\\x0a active_anon:63 a\\x5cb \\xzz").unwrap();
        assert_eq!(multi.text, "Mem-Info:\n active_anon:63 a\\b \\xzz");
    }

    #[test]
    fn only_what_the_console_left_out_is_written_to_it() {
        let line = |level, text: &str| Record { level, usec: 0, text: text.into() };
        assert!(hidden_on_console(&line(6, "task:sleep state:D"), Some(4)));
        assert!(!hidden_on_console(&line(6, "task:sleep state:D"), Some(7)), "-v: the kernel printed it");
        assert!(!hidden_on_console(&line(3, "an error"), Some(4)));
        assert!(!hidden_on_console(&line(6, "sysrq: Show Blocked State"), Some(4)), "printed at any level");
        assert!(!hidden_on_console(&line(6, "x"), None));
    }

    #[test]
    fn the_console_loglevel_is_the_first_printk_field() {
        assert_eq!(console_loglevel("4\t4\t1\t7\n"), Some(4));
        assert_eq!(console_loglevel(""), None);
    }
}
