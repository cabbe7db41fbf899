//! Kconfig fragments: `CONFIG_X=y|m|"str"|123`, `# CONFIG_X is not set`,
//! comments. Parsed with the place each value came from, merged in order
//! (later wins, as in `scripts/kconfig/merge_config.sh`), and rendered back.
//! A `.config` is a fragment too, which is how results are read for checking.

use std::collections::HashMap;
use std::fmt;

/// An option's value as written in a fragment or a `.config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Yes,
    Module,
    /// `n`, `# CONFIG_X is not set`, or absent from a `.config`.
    No,
    /// A string option's value, unescaped.
    Str(String),
    /// An `int` or `hex` option's value as written (`64`, `0x1000000`).
    Num(String),
}

impl Value {
    /// Equality the way Kconfig means it: numbers by value (`0x10` is `16`).
    pub fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Num(a), Value::Num(b)) => match (parse_int(a), parse_int(b)) {
                (Some(x), Some(y)) => x == y,
                _ => a == b,
            },
            _ => self == other,
        }
    }
}

/// The value as a user writes it: `y`, `m`, `n`, `"str"`, `64`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Yes => f.write_str("y"),
            Value::Module => f.write_str("m"),
            Value::No => f.write_str("n"),
            Value::Str(s) => write!(f, "\"{}\"", escape(s)),
            Value::Num(n) => f.write_str(n),
        }
    }
}

fn parse_int(s: &str) -> Option<i128> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => i128::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn is_number(s: &str) -> bool {
    parse_int(s).is_some()
}

/// Kconfig escapes `"` and `\` inside string values.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

/// Where a requested value came from, for messages: `configs/vm.config:12`, `--set`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub source: String,
    /// 1-based; 0 when the value did not come from a file (`--set`).
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => f.write_str(&self.source),
            n => write!(f, "{}:{n}", self.source),
        }
    }
}

/// One option with its value and origin. `name` includes the `CONFIG_` prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub value: Value,
    pub origin: Origin,
}

impl Entry {
    /// The line a `.config` would hold.
    pub fn render(&self) -> String {
        match &self.value {
            Value::No => format!("# {} is not set", self.name),
            v => format!("{}={v}", self.name),
        }
    }
}

/// Options in the order first requested, one value each (the last one given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fragment {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
}

/// A line that is neither an option, an unset option, nor a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub origin: Origin,
    pub line: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {:?} is not Kconfig syntax (expected CONFIG_X=y|m|n|\"str\"|123, \
             `# CONFIG_X is not set` or a comment)",
            self.origin, self.line
        )
    }
}

impl std::error::Error for ParseError {}

fn valid_name(name: &str) -> bool {
    name.len() > "CONFIG_".len()
        && name.starts_with("CONFIG_")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The value part of `CONFIG_X=...` in a file: quoted strings are unescaped,
/// anything else that is not `y`/`m`/`n` is kept as written.
fn file_value(raw: &str) -> Option<Value> {
    Some(match raw {
        "y" => Value::Yes,
        "m" => Value::Module,
        "n" => Value::No,
        _ if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') => {
            Value::Str(unescape(&raw[1..raw.len() - 1]))
        }
        _ if raw.starts_with('"') => return None,
        _ => Value::Num(raw.to_string()),
    })
}

impl Fragment {
    /// Parses a fragment or a `.config`; `source` names it in errors and origins.
    pub fn parse(text: &str, source: &str) -> Result<Fragment, ParseError> {
        let mut fragment = Fragment::default();
        for (i, raw) in text.lines().enumerate() {
            let origin = Origin { source: source.to_string(), line: i + 1 };
            let line = raw.trim();
            let bad = || ParseError { origin: origin.clone(), line: raw.to_string() };
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                if let Some(name) = comment.trim().strip_suffix(" is not set") {
                    if !valid_name(name) {
                        return Err(bad());
                    }
                    fragment.set(Entry { name: name.to_string(), value: Value::No, origin });
                }
                continue;
            }
            let (name, raw_value) = line.split_once('=').ok_or_else(bad)?;
            let value = file_value(raw_value).ok_or_else(bad)?;
            if !valid_name(name) {
                return Err(bad());
            }
            fragment.set(Entry { name: name.to_string(), value, origin });
        }
        Ok(fragment)
    }

    /// Sets one option; a later value replaces an earlier one in place.
    pub fn set(&mut self, entry: Entry) {
        match self.index.get(&entry.name) {
            Some(&i) => self.entries[i] = entry,
            None => {
                self.index.insert(entry.name.clone(), self.entries.len());
                self.entries.push(entry);
            }
        }
    }

    /// Applies `other` on top of `self`: its values win.
    pub fn merge(&mut self, other: Fragment) {
        for entry in other.entries {
            self.set(entry);
        }
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.index.get(name).map(|&i| &self.entries[i])
    }

    /// The value as Kconfig reads it: absent means `n`.
    pub fn value(&self, name: &str) -> &Value {
        self.get(name).map(|e| &e.value).unwrap_or(&Value::No)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The fragment as Kconfig input, one option a line, each line preceded
    /// by a comment naming where it came from.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            out.push_str(&format!("# {}\n{}\n", e.origin, e.render()));
        }
        out
    }
}

/// A `--set` argument: `CONFIG_X=VALUE` or `X=VALUE`. `y`, `m`, `n` and
/// numbers are taken as such, `"..."` as a string, and any other bare word as
/// a string too (`--set LOCALVERSION=-dev`).
pub fn parse_set(arg: &str) -> Result<Entry, String> {
    let (name, raw) = arg
        .split_once('=')
        .ok_or_else(|| format!("--set {arg:?}: expected CONFIG_X=VALUE (y, m, n, \"string\" or a number)"))?;
    let name = name.trim();
    let name = if name.starts_with("CONFIG_") { name.to_string() } else { format!("CONFIG_{name}") };
    if !valid_name(&name) {
        return Err(format!("--set {arg:?}: {name:?} is not a Kconfig option name"));
    }
    let value = match raw {
        "y" => Value::Yes,
        "m" => Value::Module,
        "n" => Value::No,
        _ if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') => {
            Value::Str(unescape(&raw[1..raw.len() - 1]))
        }
        _ if raw.starts_with('"') => {
            return Err(format!("--set {arg:?}: the string value has no closing quote"));
        }
        _ if is_number(raw) => Value::Num(raw.to_string()),
        _ => Value::Str(raw.to_string()),
    };
    Ok(Entry { name, value, origin: Origin { source: "--set".into(), line: 0 } })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# The serial console
CONFIG_SERIAL_8250=y
CONFIG_VIRTIO_FS=m

# CONFIG_KASAN is not set
CONFIG_CMDLINE=\"console=ttyS0 a=\\\"b\\\"\"
CONFIG_NR_CPUS=64
CONFIG_PHYSICAL_START=0x1000000
CONFIG_X=n
";

    #[test]
    fn parses_every_kind_of_line_with_its_origin() {
        let f = Fragment::parse(SAMPLE, "vm.config").unwrap();
        assert_eq!(f.value("CONFIG_SERIAL_8250"), &Value::Yes);
        assert_eq!(f.value("CONFIG_VIRTIO_FS"), &Value::Module);
        assert_eq!(f.value("CONFIG_KASAN"), &Value::No);
        assert_eq!(f.value("CONFIG_X"), &Value::No);
        assert_eq!(f.value("CONFIG_ABSENT"), &Value::No);
        assert_eq!(f.value("CONFIG_CMDLINE"), &Value::Str("console=ttyS0 a=\"b\"".into()));
        assert_eq!(f.value("CONFIG_NR_CPUS"), &Value::Num("64".into()));
        assert_eq!(f.get("CONFIG_KASAN").unwrap().origin.to_string(), "vm.config:5");
        assert_eq!(f.entries().len(), 7);
    }

    #[test]
    fn renders_back_to_what_it_parsed() {
        let f = Fragment::parse(SAMPLE, "vm.config").unwrap();
        let again = Fragment::parse(&f.render(), "rendered").unwrap();
        let values = |f: &Fragment| f.entries().iter().map(|e| e.render()).collect::<Vec<_>>();
        assert_eq!(values(&f), values(&again));
        assert!(f.render().contains("# vm.config:5\n# CONFIG_KASAN is not set\n"));
        assert!(f.render().contains("CONFIG_CMDLINE=\"console=ttyS0 a=\\\"b\\\"\"\n"));
    }

    #[test]
    fn later_values_win_and_keep_the_first_position() {
        let mut f = Fragment::parse("CONFIG_A=y\nCONFIG_B=y\n", "base").unwrap();
        f.merge(Fragment::parse("# CONFIG_A is not set\nCONFIG_C=m\n", "extra").unwrap());
        let names: Vec<_> = f.entries().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["CONFIG_A", "CONFIG_B", "CONFIG_C"]);
        assert_eq!(f.value("CONFIG_A"), &Value::No);
        assert_eq!(f.get("CONFIG_A").unwrap().origin.to_string(), "extra:1");
    }

    #[test]
    fn a_line_that_is_not_kconfig_is_an_error_naming_the_place() {
        let err = Fragment::parse("CONFIG_A=y\nVIRTIO=y\n", "mine.config").unwrap_err();
        assert_eq!(err.origin.to_string(), "mine.config:2");
        assert!(err.to_string().contains("\"VIRTIO=y\" is not Kconfig syntax"), "{err}");
        assert!(Fragment::parse("CONFIG_S=\"open\n", "f").is_err());
        assert!(Fragment::parse("# CONFIG_bad name is not set\n", "f").is_err());
    }

    #[test]
    fn set_values_render_as_kconfig_lines() {
        let render = |arg: &str| parse_set(arg).unwrap().render();
        assert_eq!(render("CONFIG_KASAN=y"), "CONFIG_KASAN=y");
        assert_eq!(render("VIRTIO_FS=m"), "CONFIG_VIRTIO_FS=m");
        assert_eq!(render("CONFIG_KASAN=n"), "# CONFIG_KASAN is not set");
        assert_eq!(render("CONFIG_NR_CPUS=8"), "CONFIG_NR_CPUS=8");
        assert_eq!(render("CONFIG_PHYSICAL_START=0x200000"), "CONFIG_PHYSICAL_START=0x200000");
        assert_eq!(render("LOCALVERSION=-dev"), "CONFIG_LOCALVERSION=\"-dev\"");
        assert_eq!(render("CONFIG_CMDLINE=\"a \\\"b\\\"\""), "CONFIG_CMDLINE=\"a \\\"b\\\"\"");
        assert_eq!(render("CONFIG_CMDLINE=a\"b"), "CONFIG_CMDLINE=\"a\\\"b\"");
        assert_eq!(render("CONFIG_LOCALVERSION="), "CONFIG_LOCALVERSION=\"\"");
        assert_eq!(parse_set("CONFIG_A=y").unwrap().origin.to_string(), "--set");
    }

    #[test]
    fn bad_set_arguments_say_what_is_wrong() {
        assert!(parse_set("CONFIG_KASAN").unwrap_err().contains("expected CONFIG_X=VALUE"));
        assert!(parse_set("CONFIG_A B=y").unwrap_err().contains("not a Kconfig option name"));
        assert!(parse_set("CONFIG_=y").unwrap_err().contains("not a Kconfig option name"));
        assert!(parse_set("CONFIG_S=\"open").unwrap_err().contains("no closing quote"));
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(Value::Num("0x10".into()).same_as(&Value::Num("16".into())));
        assert!(!Value::Num("17".into()).same_as(&Value::Num("16".into())));
        assert!(!Value::Yes.same_as(&Value::Module));
        assert!(Value::Str("a".into()).same_as(&Value::Str("a".into())));
    }
}
