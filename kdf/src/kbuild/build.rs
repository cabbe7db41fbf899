//! `kdf kernel build` (and `kdf run --build`): one `make` for the image,
//! `vmlinux`, modules, the gdb scripts, `modules_prepare` (out-of-tree
//! modules build against the build directory) and `rust-project.json` (or the
//! targets given), with progress, a log and the make variables recorded in
//! the build directory; then the config is checked again, since kbuild
//! re-runs Kconfig by itself when the source or the compiler changed.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};

use super::arch::{self, BuildAsk, Toolchain};
use super::configure::{self, REQUESTED, VERIFIED};
use super::make::{self, Display, Make};
use super::makevars::{self, MakeVar};
use super::tree::{self, Tree};
use super::{ccache, toolchain, tree_build};
use crate::arch::Arch;
use crate::cache;
use crate::errors::hinted;
use crate::kconfig::fragment::{Fragment, Value};
use crate::ui::say;

/// The previous full build's step count, for a percentage next time.
const STEPS_FILE: &str = ".kdf-build-steps";
/// The last build's whole output (both of make's streams).
pub const LOG_FILE: &str = "kdf-build.log";

/// The make targets for a tree configured for `arch`.
pub fn targets(config: &Fragment, arch: Arch) -> Vec<String> {
    let on = |name: &str| *config.value(name) == Value::Yes;
    let mut t = vec![arch.image().0, "vmlinux"];
    if on("CONFIG_MODULES") {
        t.extend(["modules", "modules_prepare"]);
    }
    if on("CONFIG_GDB_SCRIPTS") {
        t.push("scripts_gdb");
    }
    if on("CONFIG_RUST") {
        t.push("rust-analyzer");
    }
    t.into_iter().map(String::from).collect()
}

/// Whether to build with `LLVM=1`: as configured (Kconfig records the
/// compiler), and `--llvm` must agree, else kbuild would reconfigure silently.
pub fn use_llvm(config: &Fragment, asked: bool, build: &Path) -> Result<bool> {
    let configured = *config.value("CONFIG_CC_IS_CLANG") == Value::Yes;
    if asked && !configured {
        return Err(hinted(
            format!("{} was configured for GCC; --llvm would change the compiler under it", build.display()),
            format!("configure it for LLVM first: kdf kernel config --llvm -O {}", build.display()),
        ));
    }
    Ok(configured)
}

/// The toolchain to build `tree` with ([`arch::for_build`]), recorded again
/// when `--cross-compile` changed it.
fn tree_toolchain(tree: &Tree, config: &Fragment, opts: &Options) -> Result<Toolchain> {
    let path = tree.build.join(arch::FILE);
    let recorded = match std::fs::read_to_string(&path) {
        Ok(text) => Some(Toolchain::parse_record(&text).map_err(|e| {
            hinted(
                format!("{}: {e}", path.display()),
                format!("configure the tree again: kdf kernel config -O {}", tree.build.display()),
            )
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
    };
    let ask = BuildAsk {
        recorded: recorded.clone(),
        configured: arch::of_config(config),
        configured_llvm: use_llvm(config, opts.llvm, &tree.build)?,
        arch: opts.arch,
        cross_compile: opts.cross_compile,
    };
    let toolchain = arch::for_build(&ask, arch::host()).map_err(|e| {
        hinted(
            e,
            format!(
                "configure it for another architecture first: kdf kernel config --arch ARCH -O {}",
                tree.build.display()
            ),
        )
    })?;
    if recorded.as_ref() != Some(&toolchain) {
        cache::write_atomic(&path, toolchain.render().as_bytes())?;
    }
    Ok(toolchain)
}

/// Whether a run's step count is worth keeping as the next "100%".
pub fn is_full_build(steps: usize, expected: Option<usize>) -> bool {
    expected.is_none_or(|e| steps * 2 > e)
}

fn read_steps(build: &Path) -> Option<usize> {
    std::fs::read_to_string(build.join(STEPS_FILE)).ok()?.trim().parse().ok()
}

fn job_count(asked: Option<u32>) -> u32 {
    asked.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1))
}

/// The make variables recorded in `build`, none if there is no record.
fn recorded_vars(build: &Path) -> Result<Vec<MakeVar>> {
    let path = build.join(makevars::FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => makevars::parse_record(&text).map_err(|e| {
            hinted(
                format!("{}: {e}", path.display()),
                "fix the line, or forget the recorded variables with --reset-vars",
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("failed to read {}", path.display())),
    }
}

/// This build's make variables: the recorded ones (unless `--reset-vars`)
/// with the given ones merged in, and ccache set up with `--ccache`. Records
/// them when they changed.
fn make_vars(opts: &Options, build: &Path, toolchain: &Toolchain) -> Result<Vec<MakeVar>> {
    let recorded = if opts.reset_vars { Vec::new() } else { recorded_vars(build)? };
    let mut vars = makevars::merge(&recorded, opts.vars);
    if opts.ccache {
        ccache::check()?;
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        vars = makevars::with_ccache(&vars, &toolchain.cc(), &makevars::utc(now));
    }
    let path = build.join(makevars::FILE);
    if vars.is_empty() && opts.reset_vars {
        let _ = std::fs::remove_file(&path);
    } else if vars != recorded || opts.reset_vars {
        cache::write_atomic(&path, makevars::render(&vars).as_bytes())?;
    }
    Ok(vars)
}

fn elapsed(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        format!("{}m{:02}s", s as u64 / 60, s as u64 % 60)
    }
}

/// The make status in words.
fn exit_words(code: Option<i32>) -> String {
    code.map_or_else(|| "make was killed by a signal".to_string(), |c| format!("make exited with {c}"))
}

/// Checks again what `kdf kernel config` verified (a build directory
/// configured by an older kdf has only the whole request).
fn recheck(tree: &Tree, arch: Arch) -> Result<()> {
    let Some(path) = [VERIFIED, REQUESTED].iter().map(|f| tree.build.join(f)).find(|p| p.exists()) else {
        return Ok(());
    };
    if !tree.build.join(".config").exists() {
        return Ok(());
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("failed to read {}", path.display()))?;
    let wanted = Fragment::parse(&text, &path.display().to_string())?;
    configure::check(&wanted, tree, arch, "the build changed its config, ")?;
    Ok(())
}

/// How to build: `kdf kernel build`'s flags, or `kdf run --build`'s defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    pub jobs: Option<u32>,
    /// `--llvm`: must agree with the config.
    pub llvm: bool,
    /// `--arch`: must agree with the config.
    pub arch: Option<Arch>,
    /// `--cross-compile PREFIX`: replaces the recorded prefix (and is recorded).
    pub cross_compile: Option<&'a str>,
    /// Make variables given now, merged into the recorded ones.
    pub vars: &'a [MakeVar],
    /// Forget the recorded make variables first.
    pub reset_vars: bool,
    pub ccache: bool,
    /// Targets instead of everything the config implies.
    pub targets: &'a [String],
}

/// A finished build.
#[derive(Debug)]
pub struct Built {
    pub steps: usize,
    pub took: Duration,
    /// Everything the config implies was built (not chosen targets).
    pub full: bool,
    pub targets: Vec<String>,
    /// ccache's hits during the build, in words, with `--ccache`.
    pub ccache: Option<String>,
}

/// Builds a configured tree: one `make` with every log line in
/// `BUILD/kdf-build.log`, shown as `display` says, with the recorded make
/// variables. Holds the build directory's lock ([`tree::lock`]), so two kdf
/// builds of one directory take turns.
pub fn build(tree: &Tree, opts: &Options, display: Display) -> Result<Built> {
    let started = Instant::now();
    let _lock = tree::lock(&tree.build, display != Display::Silent)?;
    tree_build::remember(tree);
    let config = configure::read_result(&tree::config_path(tree)?)?;
    let toolchain = tree_toolchain(tree, &config, opts)?;
    if toolchain.llvm {
        toolchain::check_llvm()?;
    }
    toolchain::check_cross(&toolchain)?;
    let vars = make_vars(opts, &tree.build, &toolchain)?;
    if !vars.is_empty() && display != Display::Silent {
        let record = tree.build.join(makevars::FILE);
        say(&format!("make variables (recorded in {}): {}", record.display(), makevars::shown(&vars)));
    }
    let full = opts.targets.is_empty();
    let m = Make {
        src: tree.src.clone(),
        build: tree.build.clone(),
        jobs: Some(job_count(opts.jobs)),
        toolchain: toolchain.clone(),
        vars: vars.iter().map(MakeVar::to_string).collect(),
        targets: if full { targets(&config, toolchain.arch) } else { opts.targets.to_vec() },
    };
    let expected = if full { read_steps(&tree.build) } else { None };
    let stats = makevars::uses_ccache(&vars).then(ccache::read).flatten();
    let log = tree.build.join(LOG_FILE);
    let run = make::run_build(&m, expected, display, &log)?;
    if !run.success {
        let shown = if display == Display::Silent { "" } else { "the compiler's messages are above; " };
        return Err(hinted(
            format!(
                "the kernel build of {} failed ({}); the last lines of its log:\n{}",
                tree.build.display(),
                exit_words(run.code),
                run.tail.join("\n")
            ),
            format!("{shown}the whole log is {}", log.display()),
        ));
    }
    if full && is_full_build(run.steps, expected) {
        let _ = std::fs::write(tree.build.join(STEPS_FILE), run.steps.to_string());
    }
    // kbuild re-runs Kconfig when Kconfig files or the compiler changed, and
    // may drop options on the way: check again what `kdf kernel config` verified.
    recheck(tree, toolchain.arch)?;
    let ccache = match (stats, stats.and_then(|_| ccache::read())) {
        (Some(before), Some(after)) => Some(ccache::describe(ccache::delta(before, after))),
        _ => None,
    };
    Ok(Built { steps: run.steps, took: started.elapsed(), full, targets: m.targets, ccache })
}

/// The summary line after a build.
pub fn summary(tree: &Tree, built: &Built) -> String {
    let steps = format!("{} step{}", built.steps, if built.steps == 1 { "" } else { "s" });
    if !built.full {
        return format!("built {} in {} ({steps})", built.targets.join(" "), elapsed(built.took));
    }
    let size = std::fs::metadata(tree.build.join("vmlinux")).map(|m| m.len() >> 20).unwrap_or(0);
    format!("built {} in {} ({steps}; vmlinux {size} MiB)", tree.build.display(), elapsed(built.took))
}

/// `kdf kernel build`: the tree (`--src`, `-O`) built as `opts` say.
pub fn run(src: Option<&Path>, build_dir: Option<&Path>, opts: &Options) -> Result<i32> {
    let tree = tree::resolve(src, build_dir)?;
    let built = build(&tree, opts, Display::for_stderr())?;
    say(&summary(&tree, &built));
    if let Some(line) = &built.ccache {
        say(line);
    }
    if built.full {
        say(&format!("boot it: kdf run --kernel {}", tree.build.display()));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Fragment {
        Fragment::parse(text, ".config").unwrap()
    }

    #[test]
    fn targets_follow_the_config() {
        let all = config("CONFIG_MODULES=y\nCONFIG_GDB_SCRIPTS=y\nCONFIG_RUST=y\n");
        assert_eq!(
            targets(&all, Arch::X86_64),
            ["bzImage", "vmlinux", "modules", "modules_prepare", "scripts_gdb", "rust-analyzer"]
        );
        assert_eq!(targets(&config("# CONFIG_MODULES is not set\n"), Arch::X86_64), ["bzImage", "vmlinux"]);
        assert_eq!(targets(&all, Arch::Arm64)[..2], ["Image.gz", "vmlinux"]);
    }

    #[test]
    fn llvm_follows_the_config_and_a_conflicting_flag_is_refused() {
        let gcc = config("CONFIG_CC_IS_GCC=y\n");
        let clang = config("CONFIG_CC_IS_CLANG=y\n");
        let b = Path::new("/b");
        assert!(!use_llvm(&gcc, false, b).unwrap());
        assert!(use_llvm(&clang, false, b).unwrap());
        assert!(use_llvm(&clang, true, b).unwrap());
        let err = use_llvm(&gcc, true, b).unwrap_err();
        assert!(crate::errors::hint_of(&err).unwrap().contains("kdf kernel config --llvm"));
    }

    #[test]
    fn only_full_builds_set_the_step_count() {
        assert!(is_full_build(100, None));
        assert!(is_full_build(9000, Some(10000)));
        assert!(!is_full_build(30, Some(10000)));
    }
}
