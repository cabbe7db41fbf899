//! `kdf kernel build`: one `make` for the image, `vmlinux`, modules, the gdb
//! scripts, `modules_prepare` (out-of-tree modules build against the build
//! directory) and `rust-project.json` (or the targets given), with progress
//! and the make variables recorded in the build directory; then the config
//! is checked again, since kbuild re-runs Kconfig by itself when the source
//! or the compiler changed.

use std::path::Path;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};

use super::configure::{self, REQUESTED, VERIFIED};
use super::make::{self, Make};
use super::makevars::{self, MakeVar};
use super::{ccache, toolchain, tree};
use crate::cache;
use crate::cli::kernel::BuildArgs;
use crate::errors::hinted;
use crate::kbuild::fragment::{Fragment, Value};
use crate::ui::say;

/// The previous full build's step count, for a percentage next time.
const STEPS_FILE: &str = ".kdf-build-steps";

/// The make targets for a configured tree.
pub fn targets(config: &Fragment) -> Vec<String> {
    let on = |name: &str| *config.value(name) == Value::Yes;
    let mut t = vec!["bzImage", "vmlinux"];
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

/// Whether a run's step count is worth keeping as the next "100%".
pub fn is_full_build(steps: usize, expected: Option<usize>) -> bool {
    expected.is_none_or(|e| steps * 2 > e)
}

fn read_steps(build: &Path) -> Option<usize> {
    std::fs::read_to_string(build.join(STEPS_FILE)).ok()?.trim().parse().ok()
}

fn jobs(asked: Option<u32>) -> u32 {
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
fn make_vars(args: &BuildArgs, build: &Path, llvm: bool) -> Result<Vec<MakeVar>> {
    let recorded = if args.reset_vars { Vec::new() } else { recorded_vars(build)? };
    let mut vars = makevars::merge(&recorded, &args.vars);
    if args.ccache {
        ccache::check()?;
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        vars = makevars::with_ccache(&vars, llvm, &makevars::utc(now));
    }
    let path = build.join(makevars::FILE);
    if vars.is_empty() && args.reset_vars {
        let _ = std::fs::remove_file(&path);
    } else if vars != recorded || args.reset_vars {
        cache::write_atomic(&path, makevars::render(&vars).as_bytes())?;
    }
    Ok(vars)
}

fn elapsed(since: Instant) -> String {
    let s = since.elapsed().as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        format!("{}m{:02}s", s as u64 / 60, s as u64 % 60)
    }
}

/// Checks again what `kdf kernel config` verified (a build directory
/// configured by an older kdf has only the whole request).
fn recheck(tree: &tree::Tree) -> Result<()> {
    let Some(path) = [VERIFIED, REQUESTED].iter().map(|f| tree.build.join(f)).find(|p| p.exists()) else {
        return Ok(());
    };
    if !tree.build.join(".config").exists() {
        return Ok(());
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("failed to read {}", path.display()))?;
    let wanted = Fragment::parse(&text, &path.display().to_string())?;
    configure::check(&wanted, tree, "the build changed its config, ")?;
    Ok(())
}

pub fn run(args: &BuildArgs) -> Result<i32> {
    let started = Instant::now();
    let tree = tree::resolve(args.tree.src.as_deref(), args.tree.build.as_deref())?;
    let config = configure::read_result(&tree::config_path(&tree)?)?;
    let llvm = use_llvm(&config, args.tree.llvm, &tree.build)?;
    if llvm {
        toolchain::check_llvm()?;
    }
    let vars = make_vars(args, &tree.build, llvm)?;
    if !vars.is_empty() {
        let record = tree.build.join(makevars::FILE);
        say(&format!("make variables (recorded in {}): {}", record.display(), makevars::shown(&vars)));
    }
    let full = args.targets.is_empty();
    let m = Make {
        src: tree.src.clone(),
        build: tree.build.clone(),
        jobs: Some(jobs(args.jobs)),
        llvm,
        vars: vars.iter().map(MakeVar::to_string).collect(),
        targets: if full { targets(&config) } else { args.targets.clone() },
    };
    let expected = if full { read_steps(&tree.build) } else { None };
    let stats = makevars::uses_ccache(&vars).then(ccache::read).flatten();
    let run = make::run_with_progress(&m, expected)?;
    if !run.success {
        return Err(hinted(
            format!(
                "the kernel build failed (make exited with {:?}); its last lines:\n{}",
                run.code,
                run.tail.join("\n")
            ),
            "the compiler's messages are above",
        ));
    }
    if full && is_full_build(run.steps, expected) {
        let _ = std::fs::write(tree.build.join(STEPS_FILE), run.steps.to_string());
    }
    // kbuild re-runs Kconfig when Kconfig files or the compiler changed, and
    // may drop options on the way: check again what `kdf kernel config` verified.
    recheck(&tree)?;
    let steps = format!("{} step{}", run.steps, if run.steps == 1 { "" } else { "s" });
    if full {
        let size = std::fs::metadata(tree.build.join("vmlinux")).map(|m| m.len() >> 20).unwrap_or(0);
        say(&format!("built {} in {} ({steps}; vmlinux {size} MiB)", tree.build.display(), elapsed(started)));
    } else {
        say(&format!("built {} in {} ({steps})", m.targets.join(" "), elapsed(started)));
    }
    if let (Some(before), Some(after)) = (stats, stats.and_then(|_| ccache::read())) {
        say(&ccache::describe(ccache::delta(before, after)));
    }
    if full {
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
            targets(&all),
            ["bzImage", "vmlinux", "modules", "modules_prepare", "scripts_gdb", "rust-analyzer"]
        );
        assert_eq!(targets(&config("# CONFIG_MODULES is not set\n")), ["bzImage", "vmlinux"]);
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
