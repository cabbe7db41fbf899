//! Where a run's time went, host side (since kdf started) and guest side
//! (kernel uptime when kdf-init reached each step), for `--timings` and `-v`.

use std::time::{Duration, Instant};

/// Named points in time, in seconds.
pub type Marks = Vec<(String, f64)>;

#[derive(Debug)]
pub struct Timings {
    started: Instant,
    host: Vec<(&'static str, Duration)>,
    /// Guest uptime in microseconds at kdf-init's steps.
    pub guest: Vec<(String, u64)>,
}

impl Timings {
    pub fn new(started: Instant) -> Self {
        let mut t = Timings { started, host: Vec::new(), guest: Vec::new() };
        t.host.push(("prepared", started.elapsed()));
        t
    }

    pub fn mark(&mut self, what: &'static str) {
        self.host.push((what, self.started.elapsed()));
    }

    /// Host marks (seconds since kdf started) and guest marks (seconds of uptime).
    pub fn seconds(&self) -> (Marks, Marks) {
        let host = self.host.iter().map(|(w, d)| (w.to_string(), d.as_secs_f64())).collect();
        let guest = self.guest.iter().map(|(w, us)| (w.clone(), *us as f64 / 1e6)).collect();
        (host, guest)
    }

    /// Lines: host marks (seconds since kdf started), then guest uptimes.
    pub fn report(&self) -> Vec<String> {
        let host: Vec<String> =
            self.host.iter().map(|(w, d)| format!("{w} {:.3}s", d.as_secs_f64())).collect();
        let mut out = vec![format!("timings (since kdf started): {}", host.join(", "))];
        if !self.guest.is_empty() {
            let guest: Vec<String> =
                self.guest.iter().map(|(w, us)| format!("{w} {:.3}s", *us as f64 / 1e6)).collect();
            out.push(format!("guest uptime at: {}", guest.join(", ")));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lists_host_then_guest_marks() {
        let mut t = Timings::new(Instant::now());
        t.mark("qemu started");
        t.guest = vec![("init".into(), 1_500_000)];
        let r = t.report();
        assert!(r[0].starts_with("timings (since kdf started): prepared 0.0"));
        assert!(r[0].contains("qemu started"));
        assert_eq!(r[1], "guest uptime at: init 1.500s");
    }
}
