//! The init file `kdf gdb` hands gdb (`gdb -x FILE`), a pure function of
//! what was found: the vmlinux, the kernel's own gdb scripts (allowed past
//! gdb's auto-load safe path, that file only), source directories, kdf's
//! Python (`lx-symbols-runtime`) with the run's modules, the stub's port and
//! the breakpoints every session wants.

use std::path::{Path, PathBuf};

use serde_json::json;

/// The Python behind `lx-symbols-runtime` (kdf's own; see its header).
pub const PYTHON: &str = include_str!("kdf.py");

/// Everything the init file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Init {
    /// What gdb attaches to, for the file's first line.
    pub title: String,
    pub vmlinux: PathBuf,
    /// The kernel's `vmlinux-gdb.py` (lx-dmesg, lx-lsmod, lx-ps, ...), its
    /// real path: gdb auto-loads it when `file` reads the vmlinux next to it.
    pub kernel_scripts: Option<PathBuf>,
    /// Where [`PYTHON`] was written.
    pub python: PathBuf,
    /// Directories gdb searches for source files.
    pub sources: Vec<PathBuf>,
    /// The `--module` files of the run: (module name, `.ko`).
    pub module_files: Vec<(String, PathBuf)>,
    /// Directories searched for other modules' `.ko` files.
    pub module_dirs: Vec<PathBuf>,
    /// A kernel build's `modules.order` (its in-tree modules).
    pub orders: Vec<PathBuf>,
    pub port: u16,
    /// Stop on kernel warnings too (`__warn`).
    pub break_on_warn: bool,
}

/// A file name as gdb's argument splitter reads it (`file`, `directory`).
fn quoted(path: &Path) -> String {
    let s = path.to_string_lossy();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A Python string literal (JSON's escapes are Python's).
fn py(path: &Path) -> String {
    json!(path.to_string_lossy()).to_string()
}

pub fn text(i: &Init) -> String {
    let mut out = vec![
        format!("# Written by kdf gdb for {}.", i.title),
        // A breakpoint in a module that is not loaded yet waits for it.
        "set breakpoint pending on".to_string(),
    ];
    out.extend(i.sources.iter().map(|d| format!("directory {}", quoted(d))));
    if let Some(scripts) = &i.kernel_scripts {
        // That file only: gdb's default safe path declines it.
        out.push(format!("add-auto-load-safe-path {}", scripts.to_string_lossy()));
    }
    out.push(format!("file {}", quoted(&i.vmlinux)));
    let files: serde_json::Map<String, serde_json::Value> =
        i.module_files.iter().map(|(name, file)| (name.clone(), json!(file.to_string_lossy()))).collect();
    let list =
        |paths: &[PathBuf]| format!("[{}]", paths.iter().map(|p| py(p)).collect::<Vec<_>>().join(", "));
    out.extend([
        "python".to_string(),
        "import importlib.util".to_string(),
        format!("_kdf_spec = importlib.util.spec_from_file_location(\"kdf\", {})", py(&i.python)),
        "kdf = importlib.util.module_from_spec(_kdf_spec)".to_string(),
        "_kdf_spec.loader.exec_module(kdf)".to_string(),
        format!(
            "kdf.setup({}, {}, {})",
            serde_json::Value::Object(files),
            list(&i.module_dirs),
            list(&i.orders)
        ),
        "end".to_string(),
        format!("target remote 127.0.0.1:{}", i.port),
        // The VM resets on a panic (panic=-1): stop before it does.
        "python kdf.set_breakpoint(\"panic\")".to_string(),
    ]);
    if i.break_on_warn {
        out.push("python kdf.set_breakpoint(\"__warn\")".to_string());
    }
    out.push("lx-symbols-runtime".to_string());
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() -> Init {
        Init {
            title: "the run of /src/m (pid 7)".into(),
            vmlinux: "/b/vmlinux".into(),
            kernel_scripts: Some("/src/linux/scripts/gdb/vmlinux-gdb.py".into()),
            python: "/cache/gdb/kdf-1.py".into(),
            sources: vec!["/src/linux".into(), "/src/m dir".into()],
            module_files: vec![("hello".into(), "/src/m/hello.ko".into())],
            module_dirs: vec!["/src/m".into()],
            orders: vec!["/b/modules.order".into()],
            port: 40123,
            break_on_warn: false,
        }
    }

    #[test]
    fn the_scripts_load_with_the_vmlinux_then_gdb_attaches_and_arms_the_module_hook() {
        let t = text(&init());
        let at = |s: &str| t.find(s).unwrap_or_else(|| panic!("no {s:?} in\n{t}"));
        assert!(
            at("add-auto-load-safe-path /src/linux/scripts/gdb/vmlinux-gdb.py\n") < at("file \"/b/vmlinux\"")
        );
        assert!(at("file \"/b/vmlinux\"") < at("kdf.setup("));
        assert!(at("kdf.setup(") < at("target remote 127.0.0.1:40123\n"));
        assert!(at("target remote") < at("kdf.set_breakpoint(\"panic\")"));
        assert!(t.ends_with("lx-symbols-runtime\n"), "{t}");
        assert!(t.contains("directory \"/src/linux\"\ndirectory \"/src/m dir\"\n"), "{t}");
        assert!(t.contains("set breakpoint pending on"));
        assert!(!t.contains("__warn"));
    }

    #[test]
    fn the_modules_reach_python_as_literals() {
        let t = text(&init());
        assert!(
            t.contains(r#"kdf.setup({"hello":"/src/m/hello.ko"}, ["/src/m"], ["/b/modules.order"])"#),
            "{t}"
        );
        assert!(t.contains(r#"spec_from_file_location("kdf", "/cache/gdb/kdf-1.py")"#), "{t}");
        let odd = Init { module_dirs: vec![PathBuf::from("/a \"b\"\\c")], ..init() };
        assert!(text(&odd).contains(r#"["/a \"b\"\\c"]"#));
        assert!(quoted(Path::new("/a \"b\"")).eq(r#""/a \"b\"""#));
    }

    #[test]
    fn warnings_stop_gdb_when_asked_and_a_distro_kernel_has_no_scripts() {
        let t = text(&Init { break_on_warn: true, kernel_scripts: None, ..init() });
        assert!(t.contains("kdf.set_breakpoint(\"__warn\")"), "{t}");
        assert!(!t.contains("add-auto-load-safe-path"), "{t}");
    }

    #[test]
    fn the_python_is_valid_python() {
        let Ok(out) = std::process::Command::new("python3")
            .args(["-c", "import ast, sys; ast.parse(sys.stdin.read())"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(PYTHON.as_bytes())?;
                child.wait_with_output()
            })
        else {
            panic!("python3 is needed to check kdf.py (scripts/setup.sh installs it)");
        };
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}
