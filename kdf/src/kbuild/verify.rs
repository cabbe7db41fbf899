//! Did every requested option land? Compares the requested fragment with the
//! resulting `.config` and explains each miss from the Kconfig tree: what it
//! got, its `depends on` lines with the current value of every symbol they
//! name, and what else decides it (no prompt, a choice, a `select`).
//! Kconfig drops an option whose dependencies are unmet without a word; this
//! is where kdf says it.

use super::fragment::{Entry, Fragment, Value};
use super::kconfig_deps::{symbols_in, Definition, Symbols};

/// A requested option whose result differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub requested: Entry,
    pub got: Value,
}

/// The requested options that did not get the requested value, in request order.
pub fn verify(requested: &Fragment, result: &Fragment) -> Vec<Mismatch> {
    requested
        .entries()
        .iter()
        .filter(|e| !e.value.same_as(result.value(&e.name)))
        .map(|e| Mismatch { requested: e.clone(), got: result.value(&e.name).clone() })
        .collect()
}

fn bare(name: &str) -> &str {
    name.strip_prefix("CONFIG_").unwrap_or(name)
}

/// `KASAN=y, CC_IS_CLANG=n` for the symbols of an expression.
fn values_of(expr: &str, result: &Fragment) -> String {
    symbols_in(expr)
        .iter()
        .map(|s| format!("{s}={}", result.value(&format!("CONFIG_{s}"))))
        .collect::<Vec<_>>()
        .join(", ")
}

/// At most this many `select` lines are listed for one option.
const MAX_SELECTORS: usize = 8;

fn explain_definition(def: &Definition, wanted: &Value, symbols: &Symbols, result: &Fragment) -> Vec<String> {
    let mut out = vec![format!("defined at {}{}", def.at, if def.kind.is_empty() { "" } else { ": " })];
    out[0].push_str(&def.kind);
    for dep in &def.depends {
        out.push(format!("{}: {}  ({})", dep.at, dep.text, values_of(&dep.expr, result)));
    }
    if *wanted == Value::Module && def.kind == "bool" {
        out.push("it is a bool: it can be y or n, not m".into());
    }
    if let Some(choice) = def.choice {
        let picked: Vec<&str> = symbols
            .choice_members(choice)
            .iter()
            .filter(|m| *result.value(&format!("CONFIG_{m}")) == Value::Yes)
            .map(String::as_str)
            .collect();
        let picked = if picked.is_empty() { "none".to_string() } else { picked.join(", ") };
        out.push(format!("it is a choice member; the choice has {picked}"));
    }
    out
}

/// Why `m` did not land: the lines to print under it, indented by the caller.
pub fn explain(m: &Mismatch, symbols: &Symbols, result: &Fragment) -> Vec<String> {
    let name = bare(&m.requested.name);
    let defs = symbols.definitions(name);
    if defs.is_empty() {
        return vec![format!(
            "no Kconfig file of this source tree defines {name} for this architecture \
             (misspelt, or not in this kernel version?)"
        )];
    }
    let mut out: Vec<String> = Vec::new();
    for def in defs {
        out.extend(explain_definition(def, &m.requested.value, symbols, result));
    }
    let wanted_on = matches!(m.requested.value, Value::Yes | Value::Module);
    if m.requested.value == Value::Module && *result.value("CONFIG_MODULES") != Value::Yes {
        out.push(format!(
            "CONFIG_MODULES={}: without modules, m cannot land",
            result.value("CONFIG_MODULES")
        ));
    }
    let prompt = defs.iter().any(|d| d.prompt);
    if !prompt {
        out.push("it has no prompt: only a select or a default sets it".into());
    }
    // Who selects it: the candidates to request instead when it has no prompt
    // and is wanted on, the culprits when it is wanted off and got on.
    let selectors: Vec<String> = symbols
        .selected_by(name)
        .iter()
        .filter(|s| !s.imply)
        .filter(|s| (wanted_on && !prompt) || *result.value(&format!("CONFIG_{}", s.by)) != Value::No)
        .map(|s| {
            let cond = s.cond.as_ref().map(|c| format!(" if {c}  ({})", values_of(c, result)));
            let value = result.value(&format!("CONFIG_{}", s.by));
            format!("{}: selected by {} ({value}){}", s.at, s.by, cond.unwrap_or_default())
        })
        .collect();
    let more = selectors.len().saturating_sub(MAX_SELECTORS);
    if !wanted_on || !prompt {
        out.extend(selectors.into_iter().take(MAX_SELECTORS));
        if more > 0 {
            out.push(format!("... and {more} more select lines"));
        }
    }
    out
}

/// At most this many misses are explained; the rest are named.
const MAX_EXPLAINED: usize = 20;

/// The whole message for a failed verification.
pub fn report(mismatches: &[Mismatch], symbols: &Symbols, result: &Fragment) -> String {
    let mut out = format!(
        "{} requested option{} did not land:",
        mismatches.len(),
        if mismatches.len() == 1 { "" } else { "s" }
    );
    for m in mismatches.iter().take(MAX_EXPLAINED) {
        out.push_str(&format!(
            "\n  {}: requested {} ({}), got {}",
            m.requested.name, m.requested.value, m.requested.origin, m.got
        ));
        for line in explain(m, symbols, result) {
            out.push_str("\n      ");
            out.push_str(&line);
        }
    }
    if let Some(rest) = mismatches.get(MAX_EXPLAINED..).filter(|r| !r.is_empty()) {
        let names: Vec<&str> = rest.iter().map(|m| m.requested.name.as_str()).collect();
        out.push_str(&format!("\n  ... and {} more: {}", rest.len(), names.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kbuild::fragment::parse_set;
    use std::collections::HashMap;

    const KCONFIG: &str = "\
config RUST
\tbool \"Rust support\"
\tdepends on RUST_IS_AVAILABLE
\tdepends on !KASAN || CC_IS_CLANG

config KASAN
\tbool \"KASAN\"

config DEBUG_INFO
\tbool

choice
\tprompt \"Debug information\"
config DEBUG_INFO_NONE
\tbool \"none\"
config DEBUG_INFO_DWARF5
\tbool \"DWARF 5\"
\tselect DEBUG_INFO
endchoice

config FRAME_POINTER
\tbool \"frame pointers\"

config UNWINDER_ORC
\tbool \"ORC\"
\tselect FRAME_POINTER if X86_32

config UNWINDER_FP
\tbool \"FP\"
\tselect FRAME_POINTER

config VIRTIO_FS
\ttristate \"virtiofs\"
";

    fn symbols() -> Symbols {
        Symbols::load("Kconfig", "x86", &mut |p| (p == "Kconfig").then(|| KCONFIG.to_string()))
    }

    fn fragment(text: &str) -> Fragment {
        Fragment::parse(text, "req.config").unwrap()
    }

    #[test]
    fn only_mismatches_are_reported_and_absent_means_n() {
        let req = fragment("CONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_N=0x10\nCONFIG_S=\"x\"\n");
        let res = fragment("CONFIG_A=y\nCONFIG_B=y\nCONFIG_N=16\nCONFIG_S=\"y\"\n");
        let names: Vec<_> = verify(&req, &res).into_iter().map(|m| (m.requested.name, m.got)).collect();
        assert_eq!(names, [("CONFIG_B".into(), Value::Yes), ("CONFIG_S".into(), Value::Str("y".into()))]);
    }

    #[test]
    fn an_unmet_dependency_is_named_with_current_values() {
        let req = fragment("CONFIG_KASAN=y\nCONFIG_RUST=y\n");
        let res = fragment("CONFIG_KASAN=y\nCONFIG_RUST_IS_AVAILABLE=y\n");
        let misses = verify(&req, &res);
        assert_eq!(misses.len(), 1);
        let text = report(&misses, &symbols(), &res);
        assert!(text.starts_with("1 requested option did not land:"), "{text}");
        assert!(text.contains("CONFIG_RUST: requested y (req.config:2), got n"), "{text}");
        assert!(text.contains("Kconfig:3: depends on RUST_IS_AVAILABLE  (RUST_IS_AVAILABLE=y)"), "{text}");
        assert!(
            text.contains("Kconfig:4: depends on !KASAN || CC_IS_CLANG  (KASAN=y, CC_IS_CLANG=n)"),
            "{text}"
        );
    }

    #[test]
    fn an_option_without_a_prompt_lists_what_selects_it() {
        let req = fragment("CONFIG_DEBUG_INFO=y\n");
        let res = fragment("CONFIG_DEBUG_INFO_NONE=y\n");
        let lines = explain(&verify(&req, &res)[0], &symbols(), &res);
        assert!(
            lines.contains(&"it has no prompt: only a select or a default sets it".to_string()),
            "{lines:?}"
        );
        assert!(lines.iter().any(|l| l.ends_with("selected by DEBUG_INFO_DWARF5 (n)")), "{lines:?}");
    }

    #[test]
    fn a_choice_member_names_what_the_choice_picked() {
        let req = fragment("CONFIG_DEBUG_INFO_DWARF5=y\n");
        let res = fragment("CONFIG_DEBUG_INFO_NONE=y\n");
        let lines = explain(&verify(&req, &res)[0], &symbols(), &res);
        assert!(
            lines.contains(&"it is a choice member; the choice has DEBUG_INFO_NONE".to_string()),
            "{lines:?}"
        );
    }

    #[test]
    fn an_option_forced_on_names_the_selects_that_are_on() {
        let req = fragment("# CONFIG_FRAME_POINTER is not set\n");
        let res = fragment("CONFIG_FRAME_POINTER=y\nCONFIG_UNWINDER_FP=y\n");
        let lines = explain(&verify(&req, &res)[0], &symbols(), &res);
        assert!(lines.iter().any(|l| l.ends_with("selected by UNWINDER_FP (y)")), "{lines:?}");
        assert!(!lines.iter().any(|l| l.contains("UNWINDER_ORC")), "off selectors are left out: {lines:?}");
    }

    #[test]
    fn unknown_options_and_impossible_values_are_called_so() {
        let mut req = Fragment::default();
        req.set(parse_set("CONFIG_VIRTIO_FSS=y").unwrap());
        req.set(parse_set("CONFIG_KASAN=m").unwrap());
        req.set(parse_set("CONFIG_VIRTIO_FS=m").unwrap());
        let res = fragment("CONFIG_KASAN=y\nCONFIG_VIRTIO_FS=y\n");
        let text = report(&verify(&req, &res), &symbols(), &res);
        assert!(text.starts_with("3 requested options did not land:"), "{text}");
        assert!(text.contains("CONFIG_VIRTIO_FSS: requested y (--set), got n"), "{text}");
        assert!(text.contains("no Kconfig file of this source tree defines VIRTIO_FSS"), "{text}");
        assert!(text.contains("it is a bool: it can be y or n, not m"), "{text}");
        assert!(text.contains("CONFIG_MODULES=n: without modules, m cannot land"), "{text}");
    }

    #[test]
    fn long_reports_explain_the_first_misses_and_name_the_rest() {
        let text: String = (0..25).map(|i| format!("CONFIG_X{i}=y\n")).collect();
        let res = fragment("");
        let report = report(&verify(&fragment(&text), &res), &symbols(), &res);
        assert!(report.starts_with("25 requested options did not land:"), "{report}");
        assert_eq!(report.matches("no Kconfig file").count(), MAX_EXPLAINED);
        assert!(
            report.ends_with("... and 5 more: CONFIG_X20, CONFIG_X21, CONFIG_X22, CONFIG_X23, CONFIG_X24")
        );
    }

    #[test]
    fn long_select_lists_are_cut() {
        let many: String = (0..12).map(|i| format!("config S{i}\n\tbool \"s\"\n\tselect HIDDEN\n")).collect();
        let text = format!("{many}config HIDDEN\n\tbool\n");
        let files: HashMap<&str, String> = [("Kconfig", text)].into();
        let symbols = Symbols::load("Kconfig", "x86", &mut |p| files.get(p).cloned());
        let req = fragment("CONFIG_HIDDEN=y\n");
        let res = fragment("");
        let lines = explain(&verify(&req, &res)[0], &symbols, &res);
        assert_eq!(lines.iter().filter(|l| l.contains("selected by")).count(), MAX_SELECTORS);
        assert_eq!(lines.last().unwrap(), "... and 4 more select lines");
    }
}
