//! The kernel console (QEMU's serial port): kept in a ring for diagnosis,
//! copied to `--console-log`, streamed to stderr with `-v` (prefixed so it is
//! never mistaken for the command's output), and read for the one-line
//! diagnosis of a failed boot and for the end of a kernel panic.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::RawFd;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use super::vmcore::PANIC_END;
use crate::relay::event::Event;
use crate::ring::LineRing;
use crate::ui;

/// Lines shown after a failure.
pub const TAIL_LINES: usize = 40;

/// Prefix of console lines streamed with `-v`.
pub const PREFIX: &str = "[console] ";

/// Lines that explain a failure, kept even after they scroll out of the tail
/// (a panic's backtrace is longer than the tail).
const NOTABLE: &[&str] = &[
    "Kernel panic - not syncing:",
    "kdf-init: error: ",
    "Initramfs unpacking failed",
    "No working init found",
    "BUG:",
    "Oops",
];

#[derive(Debug)]
struct Lines {
    tail: LineRing,
    notable: Vec<String>,
    /// QEMU closed the console: every line is in.
    ended: bool,
}

impl Default for Lines {
    fn default() -> Self {
        Lines { tail: LineRing::new(TAIL_LINES), notable: Vec::new(), ended: false }
    }
}

/// The console's last lines and its notable ones.
#[derive(Debug, Clone, Default)]
pub struct Tail(Arc<Mutex<Lines>>);

/// The lines kdf shows when a VM fails: the console's last lines (unless
/// they were streamed already) and each child's stderr tail, prefixed.
pub fn tails(tail: &Tail, console: bool, children: &[(&str, String)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if console {
        out.extend(tail.lines().iter().map(|l| format!("{PREFIX}{l}")));
    }
    for (prefix, text) in children {
        out.extend(text.lines().filter(|l| !l.trim().is_empty()).map(|l| format!("{prefix} {l}")));
    }
    out
}

impl Tail {
    fn push(&self, line: String) {
        let mut l = self.0.lock().unwrap();
        if l.notable.len() < 16 && NOTABLE.iter().any(|p| line.contains(p)) {
            l.notable.push(line.clone());
        }
        l.tail.push(line);
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().tail.lines()
    }

    /// Waits up to `limit` for the console to end (QEMU gone), so a
    /// diagnosis sees the last lines: the channel and the console are read
    /// by two threads, and the channel may close first.
    pub fn wait_end(&self, limit: std::time::Duration) {
        let start = std::time::Instant::now();
        while !self.0.lock().unwrap().ended && start.elapsed() < limit {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Notable lines first, then the tail: what [`diagnose`] reads.
    pub fn evidence(&self) -> Vec<String> {
        let l = self.0.lock().unwrap();
        l.notable.iter().chain(l.tail.iter()).cloned().collect()
    }
}

/// Reads the console until QEMU closes it, streaming each line to `echo`
/// (kdf's stderr with `-v`) through kdf's line writer, so a stalled reader
/// of stderr holds it up only briefly and a raw terminal gets `\r\n`; says on
/// `events` when a kernel panic has ended. Runs on its own thread.
pub fn pump(
    source: impl Read,
    tail: Tail,
    mut log: Option<File>,
    echo: Option<RawFd>,
    events: Option<Sender<Event>>,
) {
    for line in BufReader::new(source).split(b'\n').map_while(Result::ok) {
        if let Some(f) = log.as_mut() {
            let _ = f.write_all(&line).and_then(|()| f.write_all(b"\n"));
        }
        let text = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
        if let Some(fd) = echo {
            ui::line_on(fd, &format!("{PREFIX}{text}"));
        }
        if let Some(events) = events.as_ref().filter(|_| text.contains(PANIC_END)) {
            let _ = events.send(Event::Panicked);
        }
        tail.push(text);
    }
    tail.0.lock().unwrap().ended = true;
}

/// What went wrong, from the console's last lines, in one line.
pub fn diagnose(lines: &[String]) -> Option<String> {
    let find =
        |pat: &str| lines.iter().find_map(|l| l.find(pat).map(|i| l[i + pat.len()..].trim().to_string()));
    if let Some(why) = find("Kernel panic - not syncing:") {
        return Some(format!("kernel panic: {why}"));
    }
    if let Some(why) = find("kdf-init: error: ") {
        return Some(format!("init: {why}"));
    }
    for (pat, what) in [
        ("Initramfs unpacking failed", "the kernel could not unpack the initramfs"),
        ("No working init found", "the kernel found no init"),
    ] {
        if let Some(rest) = find(pat) {
            let rest = rest.trim_start_matches(':').trim();
            return Some(if rest.is_empty() { what.to_string() } else { format!("{what}: {rest}") });
        }
    }
    lines
        .iter()
        .find(|l| l.contains("BUG:") || l.contains("Oops"))
        .map(|l| format!("kernel bug: {}", l.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    #[test]
    fn panics_are_named_first() {
        let l = lines(
            "[    1.0] foo\n[    2.3] Kernel panic - not syncing: sysrq triggered crash\n[    2.4] CPU: 0",
        );
        assert_eq!(diagnose(&l).unwrap(), "kernel panic: sysrq triggered crash");
    }

    #[test]
    fn init_errors_are_named() {
        let l = lines("kdf-init: error: cannot mount the host's files: cannot mount virtiofs kdf0 on /newroot: No such device");
        assert_eq!(
            diagnose(&l).unwrap(),
            "init: cannot mount the host's files: cannot mount virtiofs kdf0 on /newroot: No such device"
        );
    }

    #[test]
    fn nothing_recognisable_is_none() {
        assert_eq!(diagnose(&lines("booting\nstill booting")), None);
    }

    #[test]
    fn a_panic_line_is_kept_after_its_backtrace_scrolls_past() {
        let tail = Tail::default();
        let mut input = String::from("Kernel panic - not syncing: sysrq triggered crash\n");
        input.extend((0..100).map(|i| format!(" ? frame{i}+0x10/0x20\n")));
        pump(input.as_bytes(), tail.clone(), None, None, None);
        assert!(!tail.lines().iter().any(|l| l.contains("panic")));
        assert_eq!(diagnose(&tail.evidence()).unwrap(), "kernel panic: sysrq triggered crash");
    }

    #[test]
    fn the_end_of_a_panic_is_heard() {
        let (tx, rx) = std::sync::mpsc::channel();
        let input = "[ 1.0] Kernel panic - not syncing: sysrq triggered crash\n[ 1.1] CPU: 0\n\
                     [ 1.2] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---\n";
        pump(input.as_bytes(), Tail::default(), None, None, Some(tx));
        assert!(matches!(rx.try_recv(), Ok(Event::Panicked)));
        assert!(rx.try_recv().is_err(), "once");
    }

    #[test]
    fn the_pump_keeps_the_last_lines_and_the_log() {
        let tail = Tail::default();
        let dir = tempfile::tempdir().unwrap();
        let log = File::create(dir.path().join("log")).unwrap();
        let input: String = (0..50).map(|i| format!("line {i}\r\n")).collect();
        pump(input.as_bytes(), tail.clone(), Some(log), None, None);
        let got = tail.lines();
        assert_eq!(got.len(), TAIL_LINES);
        assert_eq!(got.last().unwrap(), "line 49");
        let logged = std::fs::read_to_string(dir.path().join("log")).unwrap();
        assert_eq!(logged, input);
    }

    #[test]
    fn streamed_lines_go_through_the_line_writer_with_their_prefix() {
        use std::os::fd::AsRawFd;
        let (r, w) = nix::unistd::pipe().unwrap();
        pump(&b"one\r\ntwo\n"[..], Tail::default(), None, Some(w.as_raw_fd()), None);
        drop(w);
        let mut got = String::new();
        File::from(r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "[console] one\n[console] two\n");
    }
}
