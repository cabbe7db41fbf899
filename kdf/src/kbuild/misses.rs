//! After Kconfig: which requested options did not land, sorted by how they
//! were asked for. A strict miss (what a kdf VM needs, `--set`, a fragment
//! under `--strict-fragments`) fails the config and is explained as
//! [`verify::report`] does; a best-effort miss (the base, kdf's or the user's
//! fragments) is counted per layer, explained in full in a report file in the
//! build directory, and the config goes on.

use super::fragment::{Entry, Fragment, Origin, Value};
use super::kconfig_deps::Symbols;
use super::layers::{self, Check, Kind, Merged};
use super::verify::{self, Mismatch};
use crate::arch::Arch;

/// The best-effort report's name in the build directory.
pub const REPORT: &str = "kdf-config-report.txt";

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Misses that fail the config, in request order (what a VM needs first).
    pub strict: Vec<Mismatch>,
    /// Best-effort misses, each with its layer's index.
    pub best_effort: Vec<(usize, Mismatch)>,
    /// Per layer, how many of its options were checked best effort.
    pub checked: Vec<usize>,
    /// The strictly checked options as they landed (as requested where they
    /// did not): what `kdf kernel build` checks again, since kbuild re-runs
    /// Kconfig when the compiler or the Kconfig files change.
    pub verified: Fragment,
}

fn bare(name: &str) -> &str {
    name.strip_prefix("CONFIG_").unwrap_or(name)
}

/// Whether Kconfig sets `name` by itself (it has no prompt): a base's value
/// for it follows from the base's other options or the toolchain
/// (`CC_VERSION_TEXT`), so it is not taken as a request of its own.
fn derived(name: &str, symbols: &Symbols) -> bool {
    let defs = symbols.definitions(bare(name));
    !defs.is_empty() && !defs.iter().any(|d| d.prompt)
}

/// Whether this kernel's Kconfig files define `name` at all.
fn unknown(name: &str, symbols: &Symbols) -> bool {
    symbols.definitions(bare(name)).is_empty()
}

/// A need that did not land, with who else asked for what, if anyone did.
fn need_miss(option: &str, why: &str, merged: &Merged, got: &Value) -> Mismatch {
    let mut source = format!("a kdf VM needs it: {why}");
    if let Some(e) = merged.fragment.get(option).filter(|e| !matches!(e.value, Value::Yes | Value::Module)) {
        source.push_str(&format!("; {} asks {}", e.origin, e.value));
    }
    let requested = Entry { name: option.into(), value: Value::Yes, origin: Origin { source, line: 0 } };
    Mismatch { requested, got: got.clone() }
}

/// Compares the merged request with the resulting `.config`.
pub fn sort(
    merged: &Merged,
    result: &Fragment,
    symbols: &Symbols,
    strict_fragments: bool,
    arch: Arch,
) -> Outcome {
    let mut out = Outcome { checked: vec![0; merged.layers.len()], ..Outcome::default() };
    for need in layers::needs(arch) {
        // An explicit --set is the user's call, and checked as such below.
        if merged.kind_of(need.option) == Some(Kind::Set) {
            continue;
        }
        let got = result.value(need.option);
        if matches!(got, Value::Yes | Value::Module) {
            let origin = Origin { source: "kdf (a VM needs it)".into(), line: 0 };
            out.verified.set(Entry { name: need.option.into(), value: got.clone(), origin });
        } else {
            let miss = need_miss(need.option, need.why, merged, got);
            out.verified.set(miss.requested.clone());
            out.strict.push(miss);
        }
    }
    for (layer, entry) in merged.entries() {
        let kind = merged.layers[layer].0;
        if kind == Kind::Base && derived(&entry.name, symbols) {
            continue;
        }
        let got = result.value(&entry.name);
        let landed = entry.value.same_as(got);
        let miss = || Mismatch { requested: entry.clone(), got: got.clone() };
        match kind.check(strict_fragments) {
            Check::Strict => {
                if !landed && !out.strict.iter().any(|m| m.requested.name == entry.name) {
                    out.strict.push(miss());
                }
                out.verified.set(entry.clone());
            }
            Check::BestEffort => {
                out.checked[layer] += 1;
                if !landed {
                    out.best_effort.push((layer, miss()));
                }
            }
        }
    }
    out
}

impl Outcome {
    /// How many options were checked best effort, and how many landed.
    pub fn best_effort_counts(&self) -> (usize, usize) {
        let checked: usize = self.checked.iter().sum();
        (checked, checked - self.best_effort.len())
    }

    fn misses_of(&self, layer: usize) -> impl Iterator<Item = &Mismatch> {
        self.best_effort.iter().filter(move |(l, _)| *l == layer).map(|(_, m)| m)
    }
}

/// One line per layer with misses: `2 of 31 options from --fragment
/// kvm_guest did not land (1 unknown to this kernel)`.
pub fn summary(outcome: &Outcome, merged: &Merged, symbols: &Symbols) -> Vec<String> {
    let mut out = Vec::new();
    for (i, (_, name)) in merged.layers.iter().enumerate() {
        let misses: Vec<&Mismatch> = outcome.misses_of(i).collect();
        if misses.is_empty() {
            continue;
        }
        let unknown = misses.iter().filter(|m| unknown(&m.requested.name, symbols)).count();
        let mut line = format!("{} of {} options from {name} did not land", misses.len(), outcome.checked[i]);
        if unknown > 0 {
            line.push_str(&format!(" ({unknown} unknown to this kernel)"));
        }
        out.push(line);
    }
    out
}

/// The report file: every best-effort miss, layer by layer, with what it got
/// and the Kconfig lines that decide it.
pub fn report(outcome: &Outcome, merged: &Merged, symbols: &Symbols, result: &Fragment) -> String {
    let (checked, landed) = outcome.best_effort_counts();
    let mut out = format!(
        "# kdf kernel config: best-effort options that did not land, and why.\n\
         # Best effort: the base, kdf's profile and the --fragment and --kselftest files\n\
         # (everything but what a kdf VM needs and --set; --strict-fragments makes the\n\
         # fragments strict). {landed} of {checked} landed.\n"
    );
    for (i, (_, name)) in merged.layers.iter().enumerate() {
        let misses: Vec<&Mismatch> = outcome.misses_of(i).collect();
        if misses.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "\n## {name}: {} of {} options did not land\n",
            misses.len(),
            outcome.checked[i]
        ));
        for m in misses {
            out.push_str(&format!(
                "\n{}: requested {} ({}), got {}\n",
                m.requested.name, m.requested.value, m.requested.origin, m.got
            ));
            for line in verify::explain(m, symbols, result) {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kbuild::layers::Layer;
    use crate::kconfig::fragment::parse_set;

    const KCONFIG: &str = "\
config VIRTIO_CONSOLE
\ttristate \"Virtio console\"
\tdepends on VIRTIO

config CC_VERSION_TEXT
\tstring

config SCSI_VIRTIO
\ttristate \"virtio-scsi\"
\tdepends on SCSI

config KPROBES
\tbool \"Kprobes\"
";

    fn symbols() -> Symbols {
        Symbols::load("Kconfig", "x86", &mut |p| (p == "Kconfig").then(|| KCONFIG.to_string()))
    }

    fn layer(kind: Kind, name: &str, text: &str) -> Layer {
        Layer { kind, name: name.into(), fragment: Fragment::parse(text, name).unwrap() }
    }

    /// Every need enabled, as vm.config asks.
    fn kdf_layer() -> Layer {
        let text: String = layers::needs(Arch::X86_64).map(|r| format!("{}=y\n", r.option)).collect();
        layer(Kind::Kdf, "kdf's fragments", &text)
    }

    fn result(text: &str) -> Fragment {
        let mut all: String = layers::needs(Arch::X86_64).map(|r| format!("{}=y\n", r.option)).collect();
        all.push_str(text);
        Fragment::parse(&all, ".config").unwrap()
    }

    fn base_and_fragment() -> Merged {
        Merged::new(vec![
            layer(
                Kind::Base,
                "the base config-6.1",
                "CONFIG_CC_VERSION_TEXT=\"gcc-12\"\nCONFIG_OLD_THING=y\n",
            ),
            kdf_layer(),
            layer(Kind::Fragment, "--fragment kvm_guest", "CONFIG_SCSI_VIRTIO=y\nCONFIG_KPROBES=y\n"),
        ])
    }

    #[test]
    fn base_and_fragment_misses_are_best_effort_and_counted_per_layer() {
        let m = base_and_fragment();
        let res = result("CONFIG_CC_VERSION_TEXT=\"gcc-13\"\nCONFIG_KPROBES=y\n");
        let out = sort(&m, &res, &symbols(), false, Arch::X86_64);
        assert!(out.strict.is_empty(), "{:?}", out.strict);
        let missed: Vec<_> = out.best_effort.iter().map(|(l, m)| (*l, m.requested.name.as_str())).collect();
        // CC_VERSION_TEXT has no prompt: Kconfig derives it, so it is no request.
        assert_eq!(missed, [(0, "CONFIG_OLD_THING"), (2, "CONFIG_SCSI_VIRTIO")]);
        let needs = layers::needs(Arch::X86_64).count();
        assert_eq!(out.checked, [1, needs, 2]);
        assert_eq!(out.best_effort_counts(), (needs + 3, needs + 1));
        assert_eq!(
            summary(&out, &m, &symbols()),
            [
                "1 of 1 options from the base config-6.1 did not land (1 unknown to this kernel)",
                "1 of 2 options from --fragment kvm_guest did not land",
            ]
        );
        // The needs are verified as they landed, for the build to check again.
        assert_eq!(out.verified.entries().len(), needs);
    }

    #[test]
    fn strict_fragments_make_fragment_misses_errors() {
        let m = base_and_fragment();
        let res = result("CONFIG_KPROBES=y\n");
        let out = sort(&m, &res, &symbols(), true, Arch::X86_64);
        let strict: Vec<_> = out.strict.iter().map(|m| m.requested.name.as_str()).collect();
        assert_eq!(strict, ["CONFIG_SCSI_VIRTIO"]);
        assert_eq!(out.best_effort.len(), 1, "the base stays best effort");
        assert_eq!(out.verified.value("CONFIG_KPROBES"), &Value::Yes);
        // A failed config leaves its strict misses for the build to report again.
        assert_eq!(out.verified.value("CONFIG_SCSI_VIRTIO"), &Value::Yes);
    }

    #[test]
    fn a_need_switched_off_by_a_fragment_is_a_strict_miss_naming_it() {
        let m = Merged::new(vec![
            kdf_layer(),
            layer(Kind::Fragment, "mine.config", "# CONFIG_VIRTIO_CONSOLE is not set\n"),
        ]);
        let res = result("");
        let mut res_without = Fragment::default();
        for e in res.entries().iter().filter(|e| e.name != "CONFIG_VIRTIO_CONSOLE") {
            res_without.set(e.clone());
        }
        let out = sort(&m, &res_without, &symbols(), false, Arch::X86_64);
        assert_eq!(out.strict.len(), 1, "{:?}", out.strict);
        let text = verify::report(&out.strict, &symbols(), &res_without);
        assert!(
            text.contains(
                "CONFIG_VIRTIO_CONSOLE: requested y (a kdf VM needs it: kdf cannot talk to kdf-init; \
                 mine.config:1 asks n), got n"
            ),
            "{text}"
        );
        assert!(text.contains("depends on VIRTIO  (VIRTIO=n)"), "{text}");
    }

    #[test]
    fn a_need_may_land_as_a_module_and_an_explicit_set_is_the_users_call() {
        let m = Merged::new(vec![kdf_layer()]);
        let res = result("CONFIG_VIRTIO_CONSOLE=m\n");
        let out = sort(&m, &res, &symbols(), false, Arch::X86_64);
        assert!(out.strict.is_empty());
        assert_eq!(out.verified.value("CONFIG_VIRTIO_CONSOLE"), &Value::Module);
        // kdf's own fragment asked y: that part is a best-effort miss.
        assert_eq!(out.best_effort[0].1.requested.name, "CONFIG_VIRTIO_CONSOLE");

        let mut off = Fragment::default();
        off.set(parse_set("CONFIG_VIRTIO_CONSOLE=n").unwrap());
        let m =
            Merged::new(vec![kdf_layer(), Layer { kind: Kind::Set, name: "--set".into(), fragment: off }]);
        let res = result("# CONFIG_VIRTIO_CONSOLE is not set\n");
        let out = sort(&m, &res, &symbols(), false, Arch::X86_64);
        assert!(out.strict.is_empty(), "{:?}", out.strict);
        assert_eq!(out.verified.value("CONFIG_VIRTIO_CONSOLE"), &Value::No);
    }

    #[test]
    fn a_set_that_cannot_land_is_strict() {
        let mut s = Fragment::default();
        s.set(parse_set("CONFIG_SCSI_VIRTIO=y").unwrap());
        let m = Merged::new(vec![kdf_layer(), Layer { kind: Kind::Set, name: "--set".into(), fragment: s }]);
        let out = sort(&m, &result(""), &symbols(), false, Arch::X86_64);
        assert_eq!(out.strict[0].requested.origin.to_string(), "--set");
    }

    #[test]
    fn the_report_explains_every_miss_under_its_layer() {
        let m = base_and_fragment();
        let res = result("");
        let out = sort(&m, &res, &symbols(), false, Arch::X86_64);
        let text = report(&out, &m, &symbols(), &res);
        let needs = layers::needs(Arch::X86_64).count();
        assert!(text.contains(&format!("{} of {} landed.", needs, needs + 3)), "{text}");
        assert!(text.contains("\n## the base config-6.1: 1 of 1 options did not land\n"), "{text}");
        assert!(text.contains("\n## --fragment kvm_guest: 2 of 2 options did not land\n"), "{text}");
        assert!(text.contains("CONFIG_SCSI_VIRTIO: requested y (--fragment kvm_guest:1), got n"), "{text}");
        assert!(text.contains("    Kconfig:10: depends on SCSI  (SCSI=n)\n"), "{text}");
        assert!(text.contains("    no Kconfig file of this source tree defines OLD_THING"), "{text}");
    }
}
