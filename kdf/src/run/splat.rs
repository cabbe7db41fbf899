//! Kernel splats in the guest's log: WARNING, BUG, Oops, general protection
//! faults, KASAN/UBSAN/KCSAN/KFENCE reports, lockdep, RCU stalls, hung tasks
//! and lockups. A splat runs from its first line to `---[ end trace`, a
//! closing `====` line, or 100 lines. Pure: records in, splats out.

use regex::Regex;

/// The most lines of one splat.
const MAX_LINES: usize = 100;

/// One splat: its lines, the first naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splat {
    pub lines: Vec<String>,
    /// Matched an `--allow-splat` pattern: reported only with `-v`.
    pub allowed: bool,
}

impl Splat {
    pub fn title(&self) -> &str {
        self.lines.first().map(String::as_str).unwrap_or_default()
    }
}

/// The text of a `/dev/kmsg` record (`PRI,SEQ,USEC,FLAGS;TEXT`).
pub fn record_text(record: &[u8]) -> String {
    let record = String::from_utf8_lossy(record);
    let text = record.split_once(';').map_or(&*record, |(_, t)| t);
    text.lines().next().unwrap_or_default().to_string()
}

/// Whether a log line opens a splat.
pub fn opens_splat(line: &str) -> bool {
    const STARTS: &[&str] = &[
        "WARNING:",
        "BUG:",
        "Oops:",
        "Oops -",
        "general protection fault",
        "KASAN:",
        "UBSAN:",
        "KCSAN:",
        "KFENCE:",
        "INFO: task ",
        "Kernel panic",
        "kernel BUG at",
        "Unable to handle kernel",
    ];
    const CONTAINS: &[&str] = &[
        "possible circular locking dependency",
        "possible recursive locking detected",
        "inconsistent lock state",
        "detected stalls on CPUs",
        "self-detected stall on CPU",
        "soft lockup - CPU",
        "detected hard LOCKUP",
        "blocked for more than",
    ];
    let line = line.trim_start();
    STARTS.iter().any(|s| line.starts_with(s)) || CONTAINS.iter().any(|c| line.contains(c))
}

fn closes_splat(line: &str) -> bool {
    line.contains("---[ end trace") || line.trim_start().starts_with("==========")
}

/// Follows the log and collects splats.
#[derive(Debug, Default)]
pub struct Scanner {
    allow: Vec<Regex>,
    open: Option<Vec<String>>,
    pub splats: Vec<Splat>,
}

impl Scanner {
    pub fn new(allow: Vec<Regex>) -> Self {
        Scanner { allow, ..Default::default() }
    }

    pub fn line(&mut self, line: &str) {
        match &mut self.open {
            Some(lines) => {
                lines.push(line.to_string());
                if closes_splat(line) || lines.len() >= MAX_LINES {
                    self.close();
                }
            }
            None if opens_splat(line) => self.open = Some(vec![line.to_string()]),
            None => {}
        }
    }

    /// Ends the splat in progress (at the end of the log).
    pub fn close(&mut self) {
        if let Some(lines) = self.open.take() {
            let allowed = lines.iter().any(|l| self.allow.iter().any(|r| r.is_match(l)));
            self.splats.push(Splat { lines, allowed });
        }
    }

    /// The splats that count (not allowed).
    pub fn failing(&self) -> impl Iterator<Item = &Splat> {
        self.splats.iter().filter(|s| !s.allowed)
    }
}

/// Taint flags that mean a splat happened (W, D, B, L), by bit, with their letter.
const SPLAT_TAINTS: &[(u32, char, &str)] =
    &[(9, 'W', "a warning"), (7, 'D', "an oops or BUG"), (5, 'B', "a bad page"), (14, 'L', "a soft lockup")];

/// The splat taints set in `after` but not in `before`, as `W (a warning)`.
pub fn new_taints(before: u64, after: u64) -> Vec<String> {
    SPLAT_TAINTS
        .iter()
        .filter(|(bit, _, _)| after & (1 << bit) != 0 && before & (1 << bit) == 0)
        .map(|(_, letter, what)| format!("{letter} ({what})"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(log: &str, allow: &[&str]) -> Scanner {
        let mut s = Scanner::new(allow.iter().map(|r| Regex::new(r).unwrap()).collect());
        for l in log.lines() {
            s.line(l);
        }
        s.close();
        s
    }

    const WARN: &str = "\
------------[ cut here ]------------
WARNING: CPU: 0 PID: 57 at /m/helloworld.c:20 helloworld_init+0x9/0x20 [helloworld]
Modules linked in: helloworld(O+)
Call Trace:
 <TASK>
 do_one_initcall+0x56/0x2e0
 </TASK>
---[ end trace 0000000000000000 ]---
helloworld: loaded";

    #[test]
    fn a_warning_runs_to_its_end_trace() {
        let s = scan(WARN, &[]);
        assert_eq!(s.splats.len(), 1);
        let splat = &s.splats[0];
        assert!(splat.title().starts_with("WARNING: CPU: 0 PID: 57"));
        assert_eq!(splat.lines.last().unwrap(), "---[ end trace 0000000000000000 ]---");
        assert_eq!(s.failing().count(), 1);
    }

    #[test]
    fn an_allowed_splat_does_not_count() {
        let s = scan(WARN, &["helloworld_init"]);
        assert_eq!(s.splats.len(), 1);
        assert_eq!(s.failing().count(), 0);
    }

    #[test]
    fn kasan_reports_close_at_the_rule_and_long_ones_at_100_lines() {
        let kasan = "==================================================================\n\
                     BUG: KASAN: slab-out-of-bounds in foo+0x1/0x2\n\
                     Read of size 4\n\
                     ==================================================================\n\
                     after";
        let s = scan(kasan, &[]);
        assert_eq!(s.splats.len(), 1);
        assert_eq!(s.splats[0].lines.len(), 3);
        let long = format!("BUG: soft lockup - CPU#0 stuck for 23s!\n{}", "x\n".repeat(300));
        assert_eq!(scan(&long, &[]).splats[0].lines.len(), MAX_LINES);
    }

    #[test]
    fn every_kind_is_recognised_and_ordinary_lines_are_not() {
        for line in [
            "BUG: kernel NULL pointer dereference, address: 0000000000000000",
            "Oops: 0002 [#1] PREEMPT SMP NOPTI",
            "general protection fault, probably for non-canonical address 0xdead: 0000 [#1]",
            "UBSAN: array-index-out-of-bounds in drivers/x.c:12:3",
            "WARNING: possible circular locking dependency detected",
            "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
            "INFO: task kworker/0:1:12 blocked for more than 120 seconds.",
            "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [x:1]",
            "KFENCE: out-of-bounds read in foo+0x1/0x2",
        ] {
            assert!(opens_splat(line), "{line}");
        }
        for line in
            ["helloworld: hello from kdf", "virtio_blk virtio1: 1/0/0 queues", "Run /init as init process"]
        {
            assert!(!opens_splat(line), "{line}");
        }
    }

    #[test]
    fn records_give_their_text() {
        assert_eq!(record_text(b"4,120,5000,-;WARNING: CPU: 0\n SUBSYSTEM=x"), "WARNING: CPU: 0");
        assert_eq!(record_text(b"no semicolon"), "no semicolon");
    }

    #[test]
    fn new_splat_taints_are_named() {
        assert_eq!(new_taints(0, 1 << 9), ["W (a warning)"]);
        assert!(new_taints(1 << 9, 1 << 9).is_empty(), "only new ones");
        assert!(new_taints(0, (1 << 12) | (1 << 13)).is_empty(), "O and E never count");
    }
}
