//! Make variables for `kdf kernel build -- W=1 C=1 KCFLAGS=...`: checked,
//! merged by name over the ones the build directory recorded (given ones
//! win), and recorded again, so the next build uses the same unless told
//! otherwise. `--ccache` is two of them: the compiler behind ccache, and a
//! fixed `KBUILD_BUILD_TIMESTAMP` (else the generated version header differs
//! on every build and whatever includes it misses the cache).

use std::fmt;

/// The record's name in the build directory.
pub const FILE: &str = "kdf-make-vars";

/// `NAME=VALUE` as make takes it on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MakeVar {
    pub name: String,
    pub value: String,
}

impl fmt::Display for MakeVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

/// The variables as a shell would take them: `W=1 CC="ccache gcc"`.
pub fn shown(vars: &[MakeVar]) -> String {
    let quote = |v: &str| {
        if !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.,:/+=@%".contains(c)) {
            v.to_string()
        } else {
            format!(
                "\"{}\"",
                v.replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$").replace('`', "\\`")
            )
        }
    };
    vars.iter().map(|v| format!("{}={}", v.name, quote(&v.value))).collect::<Vec<_>>().join(" ")
}

/// Variables kdf sets itself, with what to use instead.
const OWN: &[(&str, &str)] = &[
    ("O", "-O BUILD_DIR"),
    ("KBUILD_OUTPUT", "-O BUILD_DIR"),
    ("LLVM", "kdf kernel config --llvm (the build follows the configured compiler)"),
    ("ARCH", "kdf kernel config --arch (the build follows the configured architecture)"),
    ("CROSS_COMPILE", "--cross-compile PREFIX"),
];

/// A `NAME=VALUE` argument. The value may be empty (`LOCALVERSION=` drops
/// the `+` kbuild appends to a modified tree's version).
pub fn parse(arg: &str) -> Result<MakeVar, String> {
    let Some((name, value)) = arg.split_once('=') else {
        return Err(format!(
            "{arg:?} is not VAR=VALUE (make variables go after `--`; make targets before it, \
             without the `--`)"
        ));
    };
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!("{arg:?}: {name:?} is not a make variable name"));
    }
    if let Some((_, instead)) = OWN.iter().find(|(own, _)| *own == name) {
        return Err(format!("{name}= is kdf's to set; use {instead}"));
    }
    if value.contains('\n') {
        return Err(format!("{name}=: the value spans lines"));
    }
    Ok(MakeVar { name: name.into(), value: value.into() })
}

/// `recorded` with `given` merged in by name: a given variable replaces a
/// recorded one in place, new ones follow in the order given.
pub fn merge(recorded: &[MakeVar], given: &[MakeVar]) -> Vec<MakeVar> {
    let mut out = recorded.to_vec();
    for var in given {
        match out.iter_mut().find(|v| v.name == var.name) {
            Some(old) => old.value = var.value.clone(),
            None => out.push(var.clone()),
        }
    }
    out
}

/// The record: a comment, then one variable a line.
pub fn render(vars: &[MakeVar]) -> String {
    let mut out = String::from(
        "# The make variables of the last `kdf kernel build` in this directory; the next\n\
         # build uses them too. `kdf kernel build -- VAR=VALUE` changes one,\n\
         # `--reset-vars` forgets them all.\n",
    );
    for var in vars {
        out.push_str(&format!("{var}\n"));
    }
    out
}

/// Reads a record back; a line that is not `NAME=VALUE` is named.
pub fn parse_record(text: &str) -> Result<Vec<MakeVar>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| parse(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// The value of `name`, if set.
pub fn get<'a>(vars: &'a [MakeVar], name: &str) -> Option<&'a str> {
    vars.iter().find(|v| v.name == name).map(|v| v.value.as_str())
}

/// Whether the compiler runs through ccache.
pub fn uses_ccache(vars: &[MakeVar]) -> bool {
    get(vars, "CC").and_then(|cc| cc.split_whitespace().next()).is_some_and(|w| w.ends_with("ccache"))
}

/// The variables with ccache set up: `CC` behind ccache (the compiler the
/// tree is configured for, or the given `CC`), and a fixed
/// `KBUILD_BUILD_TIMESTAMP` (`now` unless one is set already).
pub fn with_ccache(vars: &[MakeVar], cc: &str, now: &str) -> Vec<MakeVar> {
    let mut add = Vec::new();
    if !uses_ccache(vars) {
        let cc = get(vars, "CC").unwrap_or(cc);
        add.push(MakeVar { name: "CC".into(), value: format!("ccache {cc}") });
    }
    if get(vars, "KBUILD_BUILD_TIMESTAMP").is_none() {
        add.push(MakeVar { name: "KBUILD_BUILD_TIMESTAMP".into(), value: now.into() });
    }
    merge(vars, &add)
}

/// `secs` since the epoch as `2026-11-30 08:15:00 UTC`, which `date -d`
/// (kbuild's initramfs and kheaders steps) reads back.
pub fn utc(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(args: &[&str]) -> Vec<MakeVar> {
        args.iter().map(|a| parse(a).unwrap()).collect()
    }

    #[test]
    fn variables_parse_with_spaces_and_empty_values() {
        assert_eq!(parse("W=1").unwrap().to_string(), "W=1");
        assert_eq!(parse("CC=ccache gcc").unwrap().value, "ccache gcc");
        assert_eq!(parse("KCFLAGS=-O1 -g=x").unwrap().value, "-O1 -g=x");
        assert_eq!(parse("LOCALVERSION=").unwrap().value, "");
        assert!(parse("clean").unwrap_err().contains("is not VAR=VALUE"));
        assert!(parse("1X=2").unwrap_err().contains("not a make variable name"));
        assert!(parse("-j4=1").is_err());
        assert!(parse("O=/tmp/b").unwrap_err().contains("-O BUILD_DIR"));
        assert!(parse("LLVM=1").unwrap_err().contains("--llvm"));
        assert!(parse("A=b\nc").is_err());
    }

    #[test]
    fn variables_are_shown_as_a_shell_takes_them() {
        let v = vars(&["W=1", "CC=ccache gcc", "LOCALVERSION=", "KCFLAGS=-DX=\"$y\""]);
        assert_eq!(shown(&v), "W=1 CC=\"ccache gcc\" LOCALVERSION=\"\" KCFLAGS=\"-DX=\\\"\\$y\\\"\"");
    }

    #[test]
    fn given_variables_replace_recorded_ones_by_name() {
        let merged = merge(&vars(&["W=1", "CC=ccache gcc"]), &vars(&["C=1", "W=2"]));
        assert_eq!(merged, vars(&["W=2", "CC=ccache gcc", "C=1"]));
        assert_eq!(merge(&[], &vars(&["W=1"])), vars(&["W=1"]));
    }

    #[test]
    fn the_record_reads_back() {
        let v = vars(&["W=1", "CC=ccache gcc", "LOCALVERSION="]);
        assert_eq!(parse_record(&render(&v)), Ok(v));
        assert_eq!(parse_record("# only comments\n\n"), Ok(Vec::new()));
        assert!(parse_record("W=1\nbogus\n").unwrap_err().starts_with("line 2: "));
    }

    #[test]
    fn ccache_wraps_the_configured_compiler_and_fixes_the_timestamp_once() {
        let now = "2026-11-30 08:15:00 UTC";
        let gcc = with_ccache(&vars(&["W=1"]), "gcc", now);
        assert_eq!(gcc, vars(&["W=1", "CC=ccache gcc", &format!("KBUILD_BUILD_TIMESTAMP={now}")]));
        assert!(uses_ccache(&gcc));
        assert_eq!(get(&with_ccache(&[], "clang", now), "CC"), Some("ccache clang"));
        let cross = with_ccache(&[], "aarch64-linux-gnu-gcc", now);
        assert_eq!(get(&cross, "CC"), Some("ccache aarch64-linux-gnu-gcc"));
        assert_eq!(get(&with_ccache(&vars(&["CC=gcc-12"]), "gcc", now), "CC"), Some("ccache gcc-12"));
        // Already set up: the recorded timestamp stays, so the cache keeps hitting.
        assert_eq!(with_ccache(&gcc, "gcc", "later"), gcc);
        assert!(uses_ccache(&vars(&["CC=/usr/bin/ccache gcc"])));
        assert!(!uses_ccache(&vars(&["CC=gcc"])));
    }

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_026_500), "2026-11-30 08:15:00 UTC");
    }
}
