//! The last N lines of a stream (a child's stderr, the kernel console, a
//! build's output), kept for the message shown when something fails.

use std::collections::VecDeque;

/// At most `cap` lines: pushing one more forgets the oldest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRing {
    cap: usize,
    lines: VecDeque<String>,
}

impl LineRing {
    pub fn new(cap: usize) -> LineRing {
        LineRing { cap, lines: VecDeque::with_capacity(cap) }
    }

    pub fn push(&mut self, line: String) {
        if self.cap == 0 {
            return;
        }
        if self.lines.len() == self.cap {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.lines.iter()
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pushed(cap: usize, n: usize) -> LineRing {
        let mut r = LineRing::new(cap);
        (0..n).for_each(|i| r.push(format!("line {i}")));
        r
    }

    #[test]
    fn keeps_the_last_lines_oldest_first() {
        assert_eq!(pushed(3, 5).lines(), ["line 2", "line 3", "line 4"]);
        assert_eq!(pushed(3, 2).lines(), ["line 0", "line 1"]);
        assert_eq!(pushed(3, 5).iter().next().map(String::as_str), Some("line 2"));
    }

    #[test]
    fn a_ring_of_no_lines_keeps_none() {
        assert!(pushed(0, 4).lines().is_empty());
    }
}
