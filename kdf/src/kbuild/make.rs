//! Running the kernel's `make`: the argv as a pure function of a [`Make`]
//! spec, a quiet run whose output is shown only on failure (configuration
//! steps), and a build run that condenses kbuild's `  CC  file.o` lines into
//! a progress line (or shows nothing) and keeps all of its output in a log.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::arch::Toolchain;
use crate::errors::hinted;
use crate::ring::LineRing;
use crate::ui;

/// One `make` invocation on a kernel tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Make {
    pub src: PathBuf,
    pub build: PathBuf,
    /// `-jN`; none for configuration steps.
    pub jobs: Option<u32>,
    /// `ARCH=`, `CROSS_COMPILE=`, `LLVM=1`: passed to every make of a tree.
    pub toolchain: Toolchain,
    /// `VAR=value` arguments, e.g. `KCONFIG_ALLCONFIG=...`.
    pub vars: Vec<String>,
    pub targets: Vec<String>,
}

/// `make -C SRC O=BUILD [-jN] ARCH=... [CROSS_COMPILE=...] [LLVM=1] [VARS...] TARGETS...`
pub fn make_argv(m: &Make) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["make".into(), "-C".into(), m.src.clone().into()];
    let mut o = OsString::from("O=");
    o.push(&m.build);
    argv.push(o);
    if let Some(j) = m.jobs {
        argv.push(format!("-j{j}").into());
    }
    argv.extend(m.toolchain.make_vars().into_iter().map(OsString::from));
    argv.extend(m.vars.iter().map(OsString::from));
    argv.extend(m.targets.iter().map(OsString::from));
    argv
}

fn command(argv: &[OsString]) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    cmd
}

fn spawn_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        hinted(
            "make is not installed",
            "install the kernel's build tools: sudo apt install build-essential flex bison bc libelf-dev libssl-dev",
        )
    } else {
        anyhow::Error::new(e).context("failed to start make")
    }
}

/// The output of a finished `make`, both streams.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub code: Option<i32>,
    pub text: String,
}

/// Runs `make` with its output captured (both streams, in order of arrival
/// per stream), for steps whose output matters only when they fail.
pub fn run_captured(m: &Make) -> Result<Output> {
    let out = command(&make_argv(m)).stdin(Stdio::null()).output().map_err(spawn_error)?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(Output { success: out.status.success(), code: out.status.code(), text })
}

/// One configuration step (`allnoconfig`, `olddefconfig`, ...) on a tree;
/// its output is shown only when it fails.
pub fn step(src: &Path, build: &Path, toolchain: &Toolchain, vars: Vec<String>, target: &str) -> Result<()> {
    let m = Make {
        src: src.to_path_buf(),
        build: build.to_path_buf(),
        jobs: None,
        toolchain: toolchain.clone(),
        vars,
        targets: vec![target.into()],
    };
    let out = run_captured(&m)?;
    if !out.success {
        return Err(hinted(
            format!("make {target} failed (status {:?}):\n{}", out.code, out.text.trim_end()),
            "the kernel's messages are above",
        ));
    }
    Ok(())
}

/// Whether a kbuild output line is one build step (`  CC      kernel/fork.o`).
pub fn is_step(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("  ") else { return false };
    let word = rest.split_whitespace().next().unwrap_or("");
    !word.is_empty()
        && word.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

/// `[ 42%] 1:05 CC kernel/fork.o` (the percentage when the previous full build's
/// step count is known), cut to `width` columns.
pub fn progress_line(
    steps: usize,
    expected: Option<usize>,
    elapsed: Duration,
    last: &str,
    width: usize,
) -> String {
    let done = match expected {
        Some(total) if total > 0 => format!("[{:3}%]", (steps * 100 / total).min(99)),
        _ => format!("[{steps} steps]"),
    };
    let last = last.split_whitespace().collect::<Vec<_>>().join(" ");
    let line = format!("kdf: {done} {} {last}", clock(elapsed));
    line.chars().take(width.max(20)).collect()
}

/// How a build shows itself on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// One progress line rewritten in place; make's stderr passes through.
    Terminal { width: usize },
    /// A progress line now and then, for logs; make's stderr passes through.
    Log { every: Duration },
    /// Nothing at all (`kdf run --build` without a terminal: stderr belongs
    /// to the command); the log file has everything.
    Silent,
}

impl Display {
    /// `kdf kernel build`'s: in place on a terminal, else a line every 30 s.
    pub fn for_stderr() -> Display {
        if std::io::stderr().is_terminal() {
            Display::Terminal { width: terminal_width() }
        } else {
            Display::Log { every: Duration::from_secs(30) }
        }
    }

    /// `kdf run --build`'s: in place on a terminal, else nothing.
    pub fn terminal_or_silent() -> Display {
        if std::io::stderr().is_terminal() {
            Display::Terminal { width: terminal_width() }
        } else {
            Display::Silent
        }
    }
}

/// The width of the terminal on stderr, where progress goes; 80 if unknown.
fn terminal_width() -> usize {
    ui::window_size(std::io::stderr()).map_or(80, |ws| usize::from(ws.cols))
}

/// What a build run saw: its status, step count and last lines of output.
#[derive(Debug)]
pub struct BuildRun {
    pub success: bool,
    pub code: Option<i32>,
    pub steps: usize,
    /// The last lines of make's output, both streams.
    pub tail: Vec<String>,
}

/// Lines of output kept for the error message when a build fails.
const TAIL: usize = 20;

/// Where every line of make's output goes besides the screen: the log file
/// and the tail kept for an error message.
struct Record {
    log: std::io::BufWriter<File>,
    tail: LineRing,
}

impl Record {
    fn push(&mut self, line: &[u8]) {
        // A full disk shows up in the build itself; the log is best effort.
        let _ = self.log.write_all(line).and_then(|()| self.log.write_all(b"\n"));
        self.tail.push(String::from_utf8_lossy(line).into_owned());
    }
}

/// Keeps make's stderr (warnings, errors) and passes it through unless
/// silent, each line on a line of its own: on a terminal the progress line is
/// cleared first, and redrawn at the next step.
fn relay_stderr(
    pipe: std::process::ChildStderr,
    display: Display,
    record: Arc<Mutex<Record>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).split(b'\n') {
            let Ok(line) = line else { break };
            record.lock().unwrap_or_else(|e| e.into_inner()).push(&line);
            if display == Display::Silent {
                continue;
            }
            let mut err = std::io::stderr().lock();
            if matches!(display, Display::Terminal { .. }) {
                let _ = err.write_all(b"\r\x1b[K");
            }
            let _ = err.write_all(&line).and_then(|()| err.write_all(b"\n"));
        }
    })
}

/// Runs a build: stdout becomes progress, stderr goes through (both as
/// `display` says), and all of it goes to the log file `log`.
/// `expected` is the previous full build's step count.
pub fn run_build(m: &Make, expected: Option<usize>, display: Display, log: &Path) -> Result<BuildRun> {
    let file =
        File::create(log).with_context(|| format!("failed to create the build log {}", log.display()))?;
    let record =
        Arc::new(Mutex::new(Record { log: std::io::BufWriter::new(file), tail: LineRing::new(TAIL) }));
    let mut child = command(&make_argv(m))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    let stdout = child.stdout.take().context("make's stdout")?;
    let relay = relay_stderr(child.stderr.take().context("make's stderr")?, display, record.clone());
    let started = Instant::now();
    let mut last_report = started;
    let mut steps = 0usize;
    for line in BufReader::new(stdout).split(b'\n') {
        let line = line.context("failed to read make's output")?;
        record.lock().unwrap_or_else(|e| e.into_inner()).push(&line);
        let line = String::from_utf8_lossy(&line);
        if !is_step(&line) {
            continue;
        }
        steps += 1;
        let elapsed = started.elapsed();
        let mut err = std::io::stderr().lock();
        match display {
            Display::Terminal { width } => {
                let _ = write!(err, "\r{}\x1b[K", progress_line(steps, expected, elapsed, &line, width));
            }
            Display::Log { every } if last_report.elapsed() >= every => {
                last_report = Instant::now();
                let _ = writeln!(err, "{}", progress_line(steps, expected, elapsed, &line, 200));
            }
            Display::Log { .. } | Display::Silent => {}
        }
    }
    let status = child.wait().context("failed to wait for make")?;
    let _ = relay.join();
    if matches!(display, Display::Terminal { .. }) && steps > 0 {
        let _ = write!(std::io::stderr(), "\r\x1b[K");
    }
    let mut record = record.lock().unwrap_or_else(|e| e.into_inner());
    record.log.flush().with_context(|| format!("failed to write the build log {}", log.display()))?;
    Ok(BuildRun { success: status.success(), code: status.code(), steps, tail: record.tail.lines() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;

    fn spec() -> Make {
        Make {
            src: "/src/linux".into(),
            build: "/src/linux/.kdf-build".into(),
            jobs: None,
            toolchain: Toolchain { arch: Arch::X86_64, cross_compile: None, llvm: false },
            vars: vec!["KCONFIG_ALLCONFIG=/b/kdf-requested.config".into()],
            targets: vec!["allnoconfig".into()],
        }
    }

    fn joined(m: &Make) -> String {
        make_argv(m).iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn config_steps_run_without_jobs_and_with_gcc() {
        assert_eq!(
            joined(&spec()),
            "make -C /src/linux O=/src/linux/.kdf-build ARCH=x86 KCONFIG_ALLCONFIG=/b/kdf-requested.config \
             allnoconfig"
        );
    }

    #[test]
    fn builds_take_jobs_llvm_and_several_targets() {
        let m = Make {
            jobs: Some(8),
            toolchain: Toolchain { llvm: true, ..spec().toolchain },
            vars: vec![],
            targets: vec!["vmlinux".into(), "modules".into()],
            ..spec()
        };
        assert_eq!(
            joined(&m),
            "make -C /src/linux O=/src/linux/.kdf-build -j8 ARCH=x86 LLVM=1 vmlinux modules"
        );
    }

    #[test]
    fn cross_builds_name_the_architecture_and_the_prefix() {
        let m = Make {
            toolchain: Toolchain::resolve(Some(Arch::Arm64), None, false, Arch::X86_64),
            vars: vec![],
            targets: vec!["Image.gz".into()],
            ..spec()
        };
        assert_eq!(
            joined(&m),
            "make -C /src/linux O=/src/linux/.kdf-build ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- Image.gz"
        );
    }

    #[test]
    fn a_silent_build_keeps_both_streams_in_the_log_and_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let makefile = "all:\n\t@echo '  CC      a.o'\n\t@echo 'a.c:1: error: oops' >&2\n\t@false\n";
        std::fs::write(dir.path().join("Makefile"), makefile).unwrap();
        let m = Make {
            src: dir.path().into(),
            build: dir.path().join("o"),
            jobs: Some(1),
            toolchain: Toolchain::native(),
            vars: vec![],
            targets: vec!["all".into()],
        };
        let log = dir.path().join("build.log");
        let run = run_build(&m, None, Display::Silent, &log).unwrap();
        assert!(!run.success);
        assert_eq!((run.code, run.steps), (Some(2), 1));
        assert!(run.tail.iter().any(|l| l == "a.c:1: error: oops"), "{:?}", run.tail);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("  CC      a.o\n") && text.contains("a.c:1: error: oops\n"), "{text}");
    }

    #[test]
    fn kbuild_step_lines_are_told_from_the_rest() {
        assert!(is_step("  CC      kernel/fork.o"));
        assert!(is_step("  LD [M]  samples/rust/rust_minimal.ko"));
        assert!(is_step("  RUSTC L rust/core.o"));
        assert!(is_step("  GEN     Makefile"));
        assert!(!is_step("make[1]: Entering directory '/b'"));
        assert!(!is_step("Kernel: arch/x86/boot/bzImage is ready  (#1)"));
        assert!(!is_step("  "));
        assert!(!is_step("   warning: unused"));
    }

    #[test]
    fn progress_shows_a_percentage_once_a_build_was_counted() {
        let d = Duration::from_secs(65);
        assert_eq!(
            progress_line(50, Some(200), d, "  CC      kernel/fork.o", 80),
            "kdf: [ 25%] 1:05 CC kernel/fork.o"
        );
        assert_eq!(progress_line(300, Some(200), d, "  LD      vmlinux", 80), "kdf: [ 99%] 1:05 LD vmlinux");
        assert_eq!(progress_line(7, None, d, "  CC      a.o", 80), "kdf: [7 steps] 1:05 CC a.o");
        assert_eq!(progress_line(7, None, d, "  CC      a_very_long_path.o", 24).chars().count(), 24);
    }
}
