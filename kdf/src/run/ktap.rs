//! KUnit results from the guest's kernel log: KTAP lines (`KTAP version 1`,
//! `1..N` plans, `ok`/`not ok` results, `# Subtest:` names), nested by four
//! spaces per level. Leaf cases are counted as `kunit.py parse` counts them:
//! a test with subtests counts its subtests, not itself. A plan that is not
//! met (the kernel crashed or a suite hung mid-way) is a failure. Pure.

/// Counts of leaf test cases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.passed + self.failed + self.skipped
    }
}

/// One top-level suite's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    pub name: String,
    pub ok: bool,
    pub counts: Counts,
    /// The module the suite is in (`# module: NAME`), none for a built-in one.
    pub module: Option<String>,
}

/// Follows KTAP lines as the log arrives.
#[derive(Debug, Default)]
pub struct Ktap {
    /// The KTAP lines, indentation kept, in order (for `--ktap FILE`).
    pub lines: Vec<String>,
    pub counts: Counts,
    pub suites: Vec<Suite>,
    /// `(depth, planned, seen)` for each open plan, outermost first.
    plans: Vec<(usize, usize, usize)>,
    /// Results seen at each depth since the last result one level up.
    children: Vec<usize>,
    /// Leaf counts at the start of the current top-level suite.
    suite_start: Counts,
    /// The name of the subtest being run at each depth.
    names: Vec<String>,
    /// The module of the top-level suite being run.
    module: Option<String>,
    /// Plans that were not met: `(depth, planned, seen)`.
    pub unmet: Vec<(usize, usize, usize)>,
}

/// A result line: `ok 3 name # SKIP why` -> (ok, name, skipped).
fn result(body: &str) -> Option<(bool, String, bool)> {
    let (ok, rest) = if let Some(r) = body.strip_prefix("not ok ") {
        (false, r)
    } else {
        (true, body.strip_prefix("ok ")?)
    };
    let (_number, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let (name, directive) = rest.split_once(" # ").map_or((rest, ""), |(n, d)| (n, d));
    let skipped = directive.trim_start().to_ascii_uppercase().starts_with("SKIP");
    Some((ok, name.trim().to_string(), skipped))
}

fn depth_of(line: &str) -> (usize, &str) {
    let body = line.trim_start_matches(' ');
    ((line.len() - body.len()) / 4, body.trim_end())
}

impl Ktap {
    /// Whether KUnit ran anything: a kernel with KUnit but no built-in suite
    /// still prints `KTAP version 1` and `1..0` at every boot.
    pub fn seen(&self) -> bool {
        self.counts.total() > 0 || !self.suites.is_empty() || !self.unmet.is_empty()
    }

    fn slot<T: Default + Clone>(v: &mut Vec<T>, depth: usize) -> &mut T {
        if v.len() <= depth {
            v.resize(depth + 1, T::default());
        }
        &mut v[depth]
    }

    /// Closes the plans at `depth` and deeper, recording unmet ones.
    fn close_plans(&mut self, depth: usize) {
        while self.plans.last().is_some_and(|&(d, _, _)| d >= depth) {
            let (d, planned, seen) = self.plans.pop().expect("checked");
            if seen < planned {
                self.unmet.push((d, planned, seen));
            }
        }
    }

    pub fn line(&mut self, line: &str) {
        let (depth, body) = depth_of(line);
        if body.starts_with("KTAP version") {
            // A new document at this depth (a module's suites start again at 0).
            self.close_plans(depth);
            *Self::slot(&mut self.children, depth + 1) = 0;
        } else if let Some(n) = body.strip_prefix("1..").and_then(|n| n.parse::<usize>().ok()) {
            self.close_plans(depth);
            self.plans.push((depth, n, 0));
        } else if let Some(name) = body.strip_prefix("# Subtest: ") {
            *Self::slot(&mut self.names, depth) = name.trim().to_string();
            if depth == 1 {
                self.suite_start = self.counts;
                self.module = None;
            }
        } else if let Some(module) = body.strip_prefix("# module: ").filter(|_| depth == 1) {
            self.module = Some(module.trim().to_string());
        } else if let Some((ok, name, skipped)) = result(body) {
            self.on_result(depth, ok, name, skipped);
        } else if !body.starts_with('#') {
            return;
        }
        self.lines.push(line.trim_end().to_string());
    }

    fn on_result(&mut self, depth: usize, ok: bool, name: String, skipped: bool) {
        if let Some(plan) = self.plans.iter_mut().rev().find(|(d, _, _)| *d == depth) {
            plan.2 += 1;
        }
        let had_children = std::mem::take(Self::slot(&mut self.children, depth + 1)) > 0;
        // The subtests' plan ends with their parent's result.
        self.close_plans(depth + 1);
        if !had_children {
            match (ok, skipped) {
                (_, true) => self.counts.skipped += 1,
                (true, false) => self.counts.passed += 1,
                (false, false) => self.counts.failed += 1,
            }
        } else if !ok && !skipped && self.counts.failed == self.suite_start.failed && depth > 0 {
            // A parent that failed with no failing leaf (e.g. its init failed).
            self.counts.failed += 1;
        }
        *Self::slot(&mut self.children, depth) += 1;
        if depth == 0 {
            let c = self.counts;
            let s = self.suite_start;
            let counts = Counts {
                passed: c.passed - s.passed,
                failed: c.failed - s.failed,
                skipped: c.skipped - s.skipped,
            };
            self.suites.push(Suite { name, ok: ok || skipped, counts, module: self.module.take() });
            self.suite_start = self.counts;
        }
    }

    /// The KTAP lines as one document, for `kunit.py parse` (which reads one):
    /// the kernel prints the built-in suites and each module's as documents of
    /// their own, so the top-level headers and plans are replaced by one plan
    /// of every top-level result, numbered in order.
    pub fn document(&self) -> Vec<String> {
        let top = |l: &&String| !l.starts_with(' ');
        let results = self.lines.iter().filter(top).filter(|l| result(l).is_some()).count();
        let mut out = vec!["KTAP version 1".to_string(), format!("1..{results}")];
        let mut n = 0;
        for line in &self.lines {
            if !top(&line) {
                out.push(line.clone());
            } else if let Some((ok, name, _)) = result(line) {
                n += 1;
                let directive = line.split_once(" # ").map(|(_, d)| format!(" # {d}")).unwrap_or_default();
                out.push(format!("{} {n} {name}{directive}", if ok { "ok" } else { "not ok" }));
            } else if line.starts_with('#') {
                out.push(line.clone());
            }
        }
        out
    }

    /// Ends the log: open plans that were not met count as failures.
    pub fn finish(&mut self) {
        self.close_plans(0);
    }

    /// Whether KUnit failed: a failing case, a failing suite or an unmet plan.
    pub fn failed(&self) -> bool {
        self.counts.failed > 0 || !self.unmet.is_empty() || self.suites.iter().any(|s| !s.ok)
    }

    /// `KUnit: N tests, N passed, N skipped, N failed` (and unmet plans).
    pub fn summary(&self) -> String {
        let c = self.counts;
        let mut s = format!(
            "KUnit: {} tests, {} passed, {} skipped, {} failed",
            c.total(),
            c.passed,
            c.skipped,
            c.failed
        );
        for (depth, planned, seen) in &self.unmet {
            s.push_str(&format!("; a plan of {planned} at depth {depth} saw {seen} (crashed or hung?)"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "\
KTAP version 1
1..1
    KTAP version 1
    # Subtest: example
    # module: kunit_example_test
    1..4
    # example_simple_test: initializing
    ok 1 example_simple_test
    ok 2 example_skip_test # SKIP this test should be skipped
        KTAP version 1
        # Subtest: example_params_test
        ok 1 example value 3 # SKIP unsupported param value 3
        ok 2 example value 2
        ok 3 example value 1
    # example_params_test: pass:2 fail:0 skip:1 total:3
    ok 3 example_params_test
    not ok 4 example_fail_test
# example: pass:4 fail:1 skip:2 total:7
not ok 1 example";

    fn parse(text: &str) -> Ktap {
        let mut k = Ktap::default();
        for l in text.lines() {
            k.line(l);
        }
        k.finish();
        k
    }

    #[test]
    fn leaf_cases_are_counted_as_kunit_py_counts_them() {
        let k = parse(EXAMPLE);
        assert_eq!(k.counts, Counts { passed: 3, failed: 1, skipped: 2 });
        assert_eq!(k.summary(), "KUnit: 6 tests, 3 passed, 2 skipped, 1 failed");
        assert!(k.failed());
        assert_eq!(k.suites.len(), 1);
        assert_eq!((k.suites[0].name.as_str(), k.suites[0].ok), ("example", false));
        assert_eq!(k.suites[0].module.as_deref(), Some("kunit_example_test"));
        assert!(k.unmet.is_empty());
    }

    #[test]
    fn a_passing_suite_passes() {
        let k = parse(
            &EXAMPLE
                .replace("not ok 4 example_fail_test", "ok 4 example_fail_test")
                .replace("not ok 1 example", "ok 1 example"),
        );
        assert_eq!(k.counts, Counts { passed: 4, failed: 0, skipped: 2 });
        assert!(!k.failed());
    }

    #[test]
    fn a_suite_that_stops_mid_way_fails_its_plan() {
        let cut: String = EXAMPLE.lines().take(8).map(|l| format!("{l}\n")).collect();
        let k = parse(&cut);
        assert!(k.failed(), "{:?}", k.unmet);
        assert!(k.summary().contains("saw 1"), "{}", k.summary());
    }

    #[test]
    fn module_suites_start_a_new_document_and_other_kernel_lines_are_dropped() {
        let text = format!("{EXAMPLE}\nvirtio_blk virtio1: something\nKTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: mod\n    1..1\n    ok 1 mod_case\nok 1 mod");
        let k = parse(&text);
        assert_eq!(k.suites.len(), 2);
        assert_eq!(k.counts.passed, 4);
        assert!(!k.lines.iter().any(|l| l.contains("virtio_blk")));
        assert!(k.lines[0] == "KTAP version 1" && k.lines.last().unwrap() == "ok 1 mod");
    }

    #[test]
    fn no_ktap_means_nothing_seen() {
        let k = parse("hello\nRun /init as init process");
        assert!(!k.seen() && !k.failed());
        let k = parse("KTAP version 1\n1..0\nRun /init as init process");
        assert!(!k.seen() && !k.failed(), "a kernel with KUnit and no built-in suite");
    }

    #[test]
    fn the_document_joins_the_kernels_documents_under_one_plan() {
        let text = "KTAP version 1\n1..1\n    # Subtest: a\n    1..1\n    ok 1 x\nok 1 a\n\
                    KTAP version 1\n1..1\n    # Subtest: b\n    1..1\n    not ok 1 y\nnot ok 1 b # a note";
        let doc = parse(text).document();
        assert_eq!(doc[..2], ["KTAP version 1", "1..2"]);
        assert_eq!(doc.iter().filter(|l| l.starts_with("KTAP")).count(), 1);
        assert!(
            doc.contains(&"ok 1 a".to_string()) && doc.contains(&"not ok 2 b # a note".to_string()),
            "{doc:?}"
        );
    }
}
