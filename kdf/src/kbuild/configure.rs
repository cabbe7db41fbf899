//! `kdf kernel config`: allnoconfig plus kdf's fragments (and the user's),
//! olddefconfig, then every requested option verified, with the Kconfig
//! lines that decide each one that did not land.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use super::make::{self, Make};
use super::tree::{self, Tree};
use super::{toolchain, tree_build};
use crate::cache;
use crate::cli::{ConfigArgs, ProfileArg};
use crate::errors::hinted;
use crate::kbuild::fragment::Fragment;
use crate::kbuild::kconfig_deps::Symbols;
use crate::kbuild::profile::{self, Profile, Request};
use crate::kbuild::verify;
use crate::ui::say;

/// The merged request, kept in the build directory: the input of
/// `KCONFIG_ALLCONFIG`, and what `kdf kernel build` checks again.
pub const REQUESTED: &str = "kdf-requested.config";

/// Where `--fragment NAME` is looked for when it is not a path: the kernel's
/// own fragments (`kvm_guest.config`, `debug.config`, ...).
pub fn fragment_candidates(src: &Path, given: &Path) -> Vec<PathBuf> {
    let mut out = vec![given.to_path_buf()];
    if given.components().count() == 1 {
        let mut names = vec![given.to_path_buf()];
        if given.extension().is_none() {
            names.push(given.with_extension("config"));
        }
        for dir in ["kernel/configs", "arch/x86/configs"] {
            out.extend(names.iter().map(|n| src.join(dir).join(n)));
        }
    }
    out
}

fn read_fragment(src: &Path, given: &Path) -> Result<(String, String)> {
    let candidates = fragment_candidates(src, given);
    let found = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
        hinted(
            format!("--fragment {}: no such file", given.display()),
            "pass a path, or the name of one of the source's kernel/configs/*.config files",
        )
    })?;
    let text =
        std::fs::read_to_string(found).with_context(|| format!("failed to read {}", found.display()))?;
    Ok((found.display().to_string(), text))
}

fn request(args: &ConfigArgs, tree: &Tree) -> Result<Request> {
    let fragments = args.fragments.iter().map(|f| read_fragment(&tree.src, f)).collect::<Result<_>>()?;
    Ok(Request {
        profile: match args.profile {
            ProfileArg::Fast => Profile::Fast,
            ProfileArg::Debug => Profile::Debug,
        },
        rust: !args.no_rust,
        bpf: args.bpf,
        llvm: args.tree.llvm,
        fragments,
        sets: args.sets.clone(),
    })
}

/// `kdf kernel config` without options: the fast profile, Rust, GCC.
pub fn default_request() -> Request {
    Request {
        profile: Profile::Fast,
        rust: true,
        bpf: false,
        llvm: false,
        fragments: Vec::new(),
        sets: Vec::new(),
    }
}

/// One configuration step; its output is shown only when it fails.
fn step(tree: &Tree, llvm: bool, vars: Vec<String>, target: &str) -> Result<()> {
    let m = Make {
        src: tree.src.clone(),
        build: tree.build.clone(),
        jobs: None,
        llvm,
        vars,
        targets: vec![target.into()],
    };
    let out = make::run_captured(&m)?;
    if !out.success {
        return Err(hinted(
            format!("make {target} failed (status {:?}):\n{}", out.code, out.text.trim_end()),
            "the kernel's messages are above",
        ));
    }
    Ok(())
}

/// The Kconfig tree of `src`, for explaining options that did not land.
pub fn load_symbols(src: &Path) -> Symbols {
    Symbols::load("Kconfig", "x86", &mut |p| std::fs::read_to_string(src.join(p)).ok())
}

/// Reads a build directory's `.config` as a fragment.
pub fn read_result(path: &Path) -> Result<Fragment> {
    let text = std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
    Fragment::parse(&text, &path.display().to_string())
        .with_context(|| format!("failed to parse {}", path.display()))
}

/// The error for options that did not land (its message after `prefix`), or
/// the number of options verified.
pub fn check(requested: &Fragment, tree: &Tree, prefix: &str) -> Result<usize> {
    let config = tree.build.join(".config");
    let result = read_result(&config)?;
    let misses = verify::verify(requested, &result);
    if misses.is_empty() {
        return Ok(requested.entries().len());
    }
    let symbols = load_symbols(&tree.src);
    Err(hinted(
        format!("{prefix}{}: {}", config.display(), verify::report(&misses, &symbols, &result)),
        format!(
            "request what those lines depend on as well (--set CONFIG_X=y, or a --fragment), or drop the \
             option; the request is {}",
            tree.build.join(REQUESTED).display()
        ),
    ))
}

/// `fast profile, Rust, BPF, 2 fragments, 1 --set, LLVM`.
pub fn summary(req: &Request) -> String {
    let mut parts = vec![match req.profile {
        Profile::Fast => "fast profile".to_string(),
        Profile::Debug => "debug profile".to_string(),
    }];
    parts.push(if req.rust { "Rust" } else { "no Rust" }.into());
    if req.bpf {
        parts.push("BPF".into());
    }
    if !req.fragments.is_empty() {
        parts.push(format!("{} fragment(s)", req.fragments.len()));
    }
    if !req.sets.is_empty() {
        parts.push(format!("{} --set", req.sets.len()));
    }
    parts.push(if req.llvm { "LLVM" } else { "GCC" }.into());
    parts.join(", ")
}

/// Configures `tree` as `req` asks and verifies the result; returns the
/// number of options verified. `quiet` keeps kdf's notices off stderr (it
/// is the command's under `kdf run --build`).
pub fn configure(tree: &Tree, req: &Request, quiet: bool) -> Result<usize> {
    let requested = profile::requested(req).map_err(|e| hinted(e.to_string(), "fix the fragment's line"))?;
    if !quiet {
        for notice in &requested.notices {
            say(notice);
        }
    }
    if req.llvm {
        toolchain::check_llvm()?;
    }
    let _lock = tree::lock(&tree.build, !quiet)?;
    tree_build::remember(tree);
    if req.rust {
        toolchain::check_rust(&tree.src, &tree.build, req.llvm)?;
    }
    let allconfig = tree.build.join(REQUESTED);
    cache::write_atomic(&allconfig, requested.fragment.render().as_bytes())?;
    step(tree, req.llvm, vec![format!("KCONFIG_ALLCONFIG={}", allconfig.display())], "allnoconfig")?;
    step(tree, req.llvm, Vec::new(), "olddefconfig")?;
    check(&requested.fragment, tree, "")
}

pub fn run(args: &ConfigArgs) -> Result<i32> {
    let started = Instant::now();
    let tree = tree::resolve(args.tree.src.as_deref(), args.tree.build.as_deref())?;
    let req = request(args, &tree)?;
    let verified = configure(&tree, &req, false)?;
    say(&format!(
        "configured {} ({}) in {:.1} s: {verified} requested options verified",
        tree.build.display(),
        summary(&req),
        started.elapsed().as_secs_f64(),
    ));
    say(&format!("next: kdf kernel build -O {}", tree.build.display()));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_fragment_name_is_looked_up_in_the_kernels_configs() {
        let c = fragment_candidates(Path::new("/src"), Path::new("kvm_guest"));
        assert_eq!(
            c,
            [
                PathBuf::from("kvm_guest"),
                "/src/kernel/configs/kvm_guest".into(),
                "/src/kernel/configs/kvm_guest.config".into(),
                "/src/arch/x86/configs/kvm_guest".into(),
                "/src/arch/x86/configs/kvm_guest.config".into(),
            ]
        );
        assert_eq!(
            fragment_candidates(Path::new("/src"), Path::new("./my.config")),
            [PathBuf::from("./my.config")]
        );
    }

    #[test]
    fn the_summary_names_every_choice() {
        let mut req = Request {
            profile: Profile::Fast,
            rust: true,
            bpf: false,
            llvm: false,
            fragments: Vec::new(),
            sets: Vec::new(),
        };
        assert_eq!(summary(&req), "fast profile, Rust, GCC");
        req.profile = Profile::Debug;
        req.rust = false;
        req.bpf = true;
        req.llvm = true;
        req.fragments.push(("a".into(), String::new()));
        req.sets.push(crate::kbuild::fragment::parse_set("A=y").unwrap());
        assert_eq!(summary(&req), "debug profile, no Rust, BPF, 1 fragment(s), 1 --set, LLVM");
    }

    #[test]
    fn run_build_configures_as_kdf_kernel_config_without_options() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["kdf", "kernel", "config"]).unwrap();
        let crate::cli::Command::Kernel(crate::cli::KernelCommand::Config(args)) = cli.command else {
            panic!("not kernel config")
        };
        let tree = Tree { src: "/src".into(), build: "/src/.kdf-build".into() };
        let (cli, ours) = (request(&args, &tree).unwrap(), default_request());
        assert_eq!(summary(&cli), summary(&ours));
        assert_eq!((cli.fragments.len(), cli.sets.len()), (ours.fragments.len(), ours.sets.len()));
    }

    #[test]
    fn a_missing_fragment_is_named() {
        let err = read_fragment(Path::new("/nonexistent"), Path::new("nope.config")).unwrap_err();
        assert_eq!(format!("{err:#}"), "--fragment nope.config: no such file");
    }
}
