//! `kdf kernel build`: one `make` for the image, `vmlinux`, modules, the gdb
//! scripts, `modules_prepare` (out-of-tree modules build against the build
//! directory) and `rust-project.json`, with progress; then the config is
//! checked again, since kbuild re-runs Kconfig by itself when the source or
//! the compiler changed.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use super::configure::{self, REQUESTED, VERIFIED};
use super::make::{self, Make};
use super::{toolchain, tree};
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
    let m = Make {
        src: tree.src.clone(),
        build: tree.build.clone(),
        jobs: Some(jobs(args.jobs)),
        llvm,
        vars: Vec::new(),
        targets: targets(&config),
    };
    let expected = read_steps(&tree.build);
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
    if is_full_build(run.steps, expected) {
        let _ = std::fs::write(tree.build.join(STEPS_FILE), run.steps.to_string());
    }
    // kbuild re-runs Kconfig when Kconfig files or the compiler changed, and
    // may drop options on the way: check again what `kdf kernel config` verified.
    recheck(&tree)?;
    let vmlinux = tree.build.join("vmlinux");
    let size = std::fs::metadata(&vmlinux).map(|m| m.len() >> 20).unwrap_or(0);
    say(&format!(
        "built {} in {} ({} step{}; vmlinux {size} MiB)",
        tree.build.display(),
        elapsed(started),
        run.steps,
        if run.steps == 1 { "" } else { "s" }
    ));
    say(&format!("boot it: kdf run --kernel {}", tree.build.display()));
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
