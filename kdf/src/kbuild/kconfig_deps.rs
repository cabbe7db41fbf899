//! What a Kconfig symbol depends on, read from the source's Kconfig tree: for
//! each definition its `depends on` lines, with the enclosing `if`, `menu` and
//! `choice` blocks (followed across `source` lines, as Kconfig does), whether
//! it has a prompt, and which symbols `select` it. Just enough of the language
//! to explain why a requested option did not land.

use std::collections::HashMap;

/// One condition a definition is under, as written, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    /// `depends on X && Y`, `if X` (an enclosing block), `depends on X (menu)`.
    pub text: String,
    /// The expression alone.
    pub expr: String,
    /// `file:line`.
    pub at: String,
}

/// One `config`/`menuconfig` entry for a symbol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Definition {
    pub at: String,
    /// `bool`, `tristate`, `string`, `int`, `hex`, or empty when not given here.
    pub kind: String,
    /// Whether a user can set it (it has a prompt); otherwise only `select`,
    /// `default` or `def_bool` set it.
    pub prompt: bool,
    pub depends: Vec<Dep>,
    /// Index into [`Symbols::choice_members`] when it is a choice member.
    pub choice: Option<usize>,
}

/// A `select X [if C]` (or `imply`) in another symbol's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Select {
    pub by: String,
    pub cond: Option<String>,
    pub at: String,
    pub imply: bool,
}

/// Symbols without the `CONFIG_` prefix, as Kconfig files name them.
#[derive(Debug, Clone, Default)]
pub struct Symbols {
    defs: HashMap<String, Vec<Definition>>,
    selects: HashMap<String, Vec<Select>>,
    choices: Vec<Vec<String>>,
}

#[derive(Debug)]
enum Frame {
    If(Dep),
    Menu(Vec<Dep>),
    Choice { index: usize, deps: Vec<Dep> },
}

/// The entry that attribute lines (`depends on`, `select`, ...) belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Current {
    #[default]
    None,
    Config,
    Menu,
    Choice,
}

/// Where the reader is in one file: the entry, and the symbol being defined
/// with its definition's index.
#[derive(Debug, Default)]
struct Cursor {
    current: Current,
    symbol: Option<(String, usize)>,
}

/// Nesting deeper than this is a `source` loop.
const MAX_DEPTH: usize = 32;

impl Symbols {
    /// Reads the tree from `root` (normally `Kconfig`), following `source`
    /// lines with `$(SRCARCH)` replaced by `srcarch`. `read` returns a file's
    /// text by its path relative to the source tree, `None` if absent.
    pub fn load(root: &str, srcarch: &str, read: &mut dyn FnMut(&str) -> Option<String>) -> Symbols {
        let mut loader = Loader { symbols: Symbols::default(), srcarch, read, stack: Vec::new() };
        loader.file(root, 0);
        loader.symbols
    }

    pub fn definitions(&self, name: &str) -> &[Definition] {
        self.defs.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn selected_by(&self, name: &str) -> &[Select] {
        self.selects.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn choice_members(&self, index: usize) -> &[String] {
        self.choices.get(index).map(Vec::as_slice).unwrap_or(&[])
    }
}

struct Loader<'a> {
    symbols: Symbols,
    srcarch: &'a str,
    read: &'a mut dyn FnMut(&str) -> Option<String>,
    stack: Vec<Frame>,
}

/// Columns of leading whitespace, a tab being up to the next multiple of 8.
fn indent(line: &str) -> usize {
    let mut col = 0;
    for c in line.chars() {
        match c {
            ' ' => col += 1,
            '\t' => col = (col / 8 + 1) * 8,
            _ => break,
        }
    }
    col
}

/// The line without a trailing `# comment` (a `#` inside quotes stays).
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Logical lines (continuations joined) with their 1-based line numbers,
/// help texts left out.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, raw)) = lines.next() {
        let mut line = raw.to_string();
        while line.ends_with('\\') {
            line.pop();
            match lines.next() {
                Some((_, next)) => line.push_str(next),
                None => break,
            }
        }
        let word = line.split_whitespace().next().unwrap_or("");
        if word == "help" || word == "---help---" {
            // The text ends at the first line indented less than its first line.
            let mut text_indent = None;
            while let Some((_, next)) = lines.peek() {
                if next.trim().is_empty() {
                    lines.next();
                    continue;
                }
                let col = indent(next);
                let min = *text_indent.get_or_insert(col);
                if col < min || col <= indent(&line) {
                    break;
                }
                lines.next();
            }
            continue;
        }
        out.push((i + 1, line));
    }
    out
}

/// The first `"quoted"` word of `s`.
fn quoted(s: &str) -> Option<&str> {
    let start = s.find('"')? + 1;
    let len = s[start..].find('"')?;
    Some(&s[start..start + len])
}

impl Loader<'_> {
    fn context(&self) -> Vec<Dep> {
        let mut deps = Vec::new();
        for frame in &self.stack {
            match frame {
                Frame::If(dep) => deps.push(dep.clone()),
                Frame::Menu(d) | Frame::Choice { deps: d, .. } => deps.extend(d.iter().cloned()),
            }
        }
        deps
    }

    fn innermost_choice(&self) -> Option<usize> {
        self.stack.iter().rev().find_map(|f| match f {
            Frame::Choice { index, .. } => Some(*index),
            _ => None,
        })
    }

    fn file(&mut self, path: &str, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let Some(text) = (self.read)(path) else { return };
        let mut cursor = Cursor::default();
        for (number, line) in logical_lines(&text) {
            let line = strip_comment(&line).trim().to_string();
            let at = format!("{path}:{number}");
            let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line.as_str(), ""));
            let rest = rest.trim();
            match word {
                "config" | "menuconfig" => cursor = self.start_config(rest, at),
                "choice" | "menu" | "if" => cursor = self.open_block(word, rest, at),
                "endchoice" | "endmenu" | "endif" => {
                    self.stack.pop();
                    cursor = Cursor::default();
                }
                "source" | "osource" | "rsource" | "orsource" => {
                    if let Some(target) = quoted(rest) {
                        let target = target.replace("$(SRCARCH)", self.srcarch);
                        let target =
                            if word.ends_with("rsource") { relative_to(path, &target) } else { target };
                        self.file(&target, depth + 1);
                    }
                    cursor = Cursor::default();
                }
                "comment" | "mainmenu" => cursor = Cursor::default(),
                _ => self.attribute(&cursor, word, rest, at),
            }
        }
    }

    fn start_config(&mut self, name: &str, at: String) -> Cursor {
        let def = Definition {
            at,
            depends: self.context(),
            choice: self.innermost_choice(),
            ..Definition::default()
        };
        if let Some(c) = def.choice {
            self.symbols.choices[c].push(name.to_string());
        }
        let defs = self.symbols.defs.entry(name.to_string()).or_default();
        defs.push(def);
        Cursor { current: Current::Config, symbol: Some((name.to_string(), defs.len() - 1)) }
    }

    fn open_block(&mut self, word: &str, rest: &str, at: String) -> Cursor {
        let (frame, current) = match word {
            "choice" => {
                self.symbols.choices.push(Vec::new());
                (Frame::Choice { index: self.symbols.choices.len() - 1, deps: Vec::new() }, Current::Choice)
            }
            "menu" => (Frame::Menu(Vec::new()), Current::Menu),
            _ => {
                let expr = collapse(rest);
                (Frame::If(Dep { text: format!("if {expr}"), expr, at }), Current::None)
            }
        };
        self.stack.push(frame);
        Cursor { current, symbol: None }
    }

    /// A line inside an entry: `depends on`, the type, `prompt`, `select`.
    fn attribute(&mut self, cursor: &Cursor, word: &str, rest: &str, at: String) {
        let symbol = cursor.symbol.as_ref();
        match word {
            "depends" => {
                let expr = collapse(rest.strip_prefix("on").unwrap_or(rest));
                self.depends(cursor.current, symbol, expr, at);
            }
            "bool" | "tristate" | "string" | "int" | "hex" | "def_bool" | "def_tristate" => {
                if let Some(def) = self.definition(symbol) {
                    def.kind = word.trim_start_matches("def_").to_string();
                    def.prompt |= !word.starts_with("def_") && quoted(rest).is_some();
                }
            }
            "prompt" => {
                if let Some(def) = self.definition(symbol) {
                    def.prompt = true;
                }
            }
            "select" | "imply" => {
                let Some((by, _)) = symbol else { return };
                let (target, cond) = match rest.split_once(" if ") {
                    Some((t, c)) => (t.trim(), Some(c.trim().to_string())),
                    None => (rest, None),
                };
                let select = Select { by: by.clone(), cond, at, imply: word == "imply" };
                self.symbols.selects.entry(target.to_string()).or_default().push(select);
            }
            _ => {}
        }
    }

    fn definition(&mut self, symbol: Option<&(String, usize)>) -> Option<&mut Definition> {
        let (name, i) = symbol?;
        self.symbols.defs.get_mut(name)?.get_mut(*i)
    }

    fn depends(&mut self, current: Current, symbol: Option<&(String, usize)>, expr: String, at: String) {
        let dep = |what: &str| Dep { text: format!("depends on {expr}{what}"), expr: expr.clone(), at };
        match (current, self.stack.last_mut()) {
            (Current::Config, _) => {
                if let Some(def) = self.definition(symbol) {
                    def.depends.push(dep(""));
                }
            }
            (Current::Menu, Some(Frame::Menu(deps))) => deps.push(dep(" (menu)")),
            (Current::Choice, Some(Frame::Choice { deps, .. })) => deps.push(dep(" (choice)")),
            _ => {}
        }
    }
}

/// Runs of whitespace (from continuation lines) as one space.
fn collapse(expr: &str) -> String {
    expr.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `rsource` paths are relative to the file that names them.
fn relative_to(file: &str, target: &str) -> String {
    match file.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{target}"),
        None => target.to_string(),
    }
}

/// The symbols an expression names, in order, without duplicates: literals
/// (`y`, `m`, `n`, numbers, strings) and `$(macro ...)` calls left out.
pub fn symbols_in(expr: &str) -> Vec<String> {
    let mut plain = String::with_capacity(expr.len());
    let (mut depth, mut quoted) = (0usize, false);
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' if chars.peek() == Some(&'(') => {
                chars.next();
                depth += 1;
            }
            '(' if depth > 0 => depth += 1,
            ')' if depth > 0 => depth -= 1,
            '"' if depth == 0 => quoted = !quoted,
            c if depth == 0 && !quoted => plain.push(c),
            _ => {}
        }
        if depth > 0 || quoted {
            plain.push(' ');
        }
    }
    let mut out: Vec<String> = Vec::new();
    for word in plain.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        let literal = matches!(word, "" | "y" | "m" | "n")
            || word.bytes().all(|b| b.is_ascii_digit())
            || (word.starts_with("0x") && word[2..].bytes().all(|b| b.is_ascii_hexdigit()));
        if !literal && !out.iter().any(|w| w == word) {
            out.push(word.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "\
mainmenu \"Linux\"
source \"arch/$(SRCARCH)/Kconfig\"
menu \"Filesystems\"
\tdepends on BLOCK
source \"fs/Kconfig\"
endmenu
";

    const FS: &str = "\
if NET_9P

config 9P_FS
\ttristate \"Plan 9 Resource Sharing Support (9P2000)\"
\tdepends on NET_9P && \\
\t\tMULTIUSER # a comment
\tselect NETFS_SUPPORT
\thelp
\t  If you say Y here, you will get experimental support for
\t  depends on NOT_A_DEPENDENCY

\t  More help.

endif

config VIRTIO_FS
\ttristate \"Virtio Filesystem\"
\tdepends on FUSE_FS && VIRTIO

config NETFS_SUPPORT
\ttristate

choice
\tprompt \"Debug information\"
\tdepends on DEBUG_KERNEL

config DEBUG_INFO_NONE
\tbool \"None\"

config DEBUG_INFO_DWARF5
\tbool \"DWARF 5\"
\tselect DEBUG_INFO if !FOO
\tdepends on !CC_IS_CLANG || $(as-instr,.uleb128 (x))

endchoice

config DEBUG_INFO
\tdef_bool n
";

    const ARCH: &str = "config X86\n\tdef_bool y\n\tselect HAVE_RUST if X86_64\n\timply VIRTIO_FS\n";

    fn symbols() -> Symbols {
        let files: HashMap<&str, &str> =
            [("Kconfig", ROOT), ("fs/Kconfig", FS), ("arch/x86/Kconfig", ARCH)].into();
        Symbols::load("Kconfig", "x86", &mut |p| files.get(p).map(|t| t.to_string()))
    }

    #[test]
    fn depends_lines_include_enclosing_blocks_across_source() {
        let s = symbols();
        let def = &s.definitions("9P_FS")[0];
        assert_eq!(def.at, "fs/Kconfig:3");
        assert_eq!((def.kind.as_str(), def.prompt), ("tristate", true));
        let texts: Vec<_> = def.depends.iter().map(|d| (d.text.as_str(), d.at.as_str())).collect();
        assert_eq!(
            texts,
            [
                ("depends on BLOCK (menu)", "Kconfig:4"),
                ("if NET_9P", "fs/Kconfig:1"),
                ("depends on NET_9P && MULTIUSER", "fs/Kconfig:5"),
            ]
        );
        let vfs = &s.definitions("VIRTIO_FS")[0];
        assert_eq!(vfs.depends.len(), 2, "the if block ended: {:?}", vfs.depends);
    }

    #[test]
    fn help_text_is_not_read_as_attributes() {
        let s = symbols();
        let all: Vec<_> = s.definitions("9P_FS")[0].depends.iter().map(|d| d.expr.clone()).collect();
        assert!(!all.iter().any(|e| e.contains("NOT_A_DEPENDENCY")), "{all:?}");
    }

    #[test]
    fn choices_prompts_and_selects_are_known() {
        let s = symbols();
        let dwarf5 = &s.definitions("DEBUG_INFO_DWARF5")[0];
        let members = s.choice_members(dwarf5.choice.unwrap());
        assert_eq!(members, ["DEBUG_INFO_NONE", "DEBUG_INFO_DWARF5"]);
        assert!(dwarf5.depends.iter().any(|d| d.text == "depends on DEBUG_KERNEL (choice)"));
        assert!(!s.definitions("NETFS_SUPPORT")[0].prompt);
        assert!(!s.definitions("DEBUG_INFO")[0].prompt);
        assert_eq!(s.definitions("DEBUG_INFO")[0].choice, None);
        let by: Vec<_> = s.selected_by("DEBUG_INFO").iter().map(|x| (&*x.by, x.cond.as_deref())).collect();
        assert_eq!(by, [("DEBUG_INFO_DWARF5", Some("!FOO"))]);
        assert!(s.selected_by("VIRTIO_FS")[0].imply);
        assert_eq!(s.selected_by("HAVE_RUST")[0].by, "X86");
        assert!(s.definitions("UNKNOWN").is_empty());
    }

    #[test]
    fn a_source_loop_ends() {
        let mut reads = 0;
        Symbols::load("Kconfig", "x86", &mut |_| {
            reads += 1;
            Some("source \"Kconfig\"\n".into())
        });
        assert_eq!(reads, MAX_DEPTH + 1);
    }

    #[test]
    fn expression_symbols_leave_literals_and_macros_out() {
        assert_eq!(symbols_in("!KASAN || CC_IS_CLANG"), ["KASAN", "CC_IS_CLANG"]);
        assert_eq!(symbols_in("RUSTC_VERSION >= 109600 && 64BIT"), ["RUSTC_VERSION", "64BIT"]);
        assert_eq!(symbols_in("X86 && (A=y || A=m) && B != \"x y\""), ["X86", "A", "B"]);
        assert_eq!(symbols_in("!CC_IS_CLANG || $(as-instr,.uleb128 (x)) && Y"), ["CC_IS_CLANG", "Y"]);
        assert_eq!(symbols_in("N > 0x10"), ["N"]);
    }
}
