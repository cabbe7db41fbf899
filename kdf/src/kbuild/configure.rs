//! `kdf kernel config`: a base (allnoconfig unless `--base` says otherwise),
//! kdf's fragments and the user's on top, `olddefconfig`, then every option
//! checked: what a kdf VM needs and `--set` strictly (a miss is an error with
//! the Kconfig lines that decide it), the rest best effort (counted, and
//! explained in a report file in the build directory).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use super::arch::{self, Toolchain};
use super::base::{self, Base};
use super::layers::{Kind, Layer, Merged};
use super::tree::{self, Tree};
use super::{inputs, make, misses, toolchain, tree_build};
use crate::arch::Arch;
use crate::cache;
use crate::errors::{hinted, usage};
use crate::kbuild::kconfig_deps::Symbols;
use crate::kbuild::profile::{self, Profile, Request};
use crate::kbuild::verify;
use crate::kconfig::fragment::{Entry, Fragment};
use crate::ui::{line, say};

/// The merged request, kept in the build directory: what Kconfig started
/// from (`KCONFIG_ALLCONFIG`, or the `.config` over a base).
pub const REQUESTED: &str = "kdf-requested.config";

/// What the config checked strictly, as it landed: `kdf kernel build` checks
/// it again.
pub const VERIFIED: &str = "kdf-verified.config";

/// What `kdf kernel config` was asked (the CLI's `ConfigArgs`, as data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigOptions {
    /// The source tree (default: found from the current directory).
    pub src: Option<PathBuf>,
    /// The build directory, `make O=` (default: SRC/.kdf-build).
    pub build: Option<PathBuf>,
    /// `--arch` (default: the host's).
    pub arch: Option<Arch>,
    /// `--cross-compile PREFIX` (default: the architecture's usual cross
    /// GCC when it is not the host's).
    pub cross_compile: Option<String>,
    pub llvm: bool,
    pub base: Base,
    pub lsmod: Option<PathBuf>,
    pub profile: Profile,
    pub rust: bool,
    pub bpf: bool,
    pub fragments: Vec<PathBuf>,
    pub kselftests: Vec<String>,
    /// `--kunit [FILE]`: empty without it, an empty path for a bare `--kunit`.
    pub kunit: Vec<PathBuf>,
    pub sets: Vec<Entry>,
    pub strict_fragments: bool,
    pub verbose: bool,
}

impl Default for ConfigOptions {
    /// `kdf kernel config` without options: allnoconfig, the fast profile, Rust, GCC.
    fn default() -> Self {
        ConfigOptions {
            src: None,
            build: None,
            arch: None,
            cross_compile: None,
            llvm: false,
            base: Base::AllNo,
            lsmod: None,
            profile: Profile::Fast,
            rust: true,
            bpf: false,
            fragments: Vec::new(),
            kselftests: Vec::new(),
            kunit: Vec::new(),
            sets: Vec::new(),
            strict_fragments: false,
            verbose: false,
        }
    }
}

fn request(args: &ConfigOptions, arch: Arch) -> Request {
    Request { arch, profile: args.profile, rust: args.rust, bpf: args.bpf, llvm: args.llvm }
}

/// The toolchain `args` ask for, on this host.
pub fn toolchain(args: &ConfigOptions) -> Toolchain {
    Toolchain::resolve(args.arch, args.cross_compile.as_deref(), args.llvm, arch::host())
}

/// `--fragment`s, `--kselftest`s and `--set`, in that order.
fn user_layers(args: &ConfigOptions, tree: &Tree, arch: Arch) -> Result<Vec<Layer>> {
    let mut layers = Vec::new();
    for given in &args.fragments {
        layers.push(inputs::fragment(&tree.src, given, arch)?);
    }
    for target in &args.kselftests {
        layers.push(inputs::kselftest(&tree.src, target, arch)?);
    }
    layers.extend(kunit_layer(&args.kunit)?);
    layers.extend(inputs::sets(&args.sets));
    Ok(layers)
}

/// `--kunit [FILE]`: `CONFIG_KUNIT=y` and each `.kunitconfig`'s options,
/// checked strictly (kunit.py refuses a config that lacks one).
fn kunit_layer(given: &[std::path::PathBuf]) -> Result<Option<Layer>> {
    if given.is_empty() {
        return Ok(None);
    }
    let mut fragment = Fragment::parse("CONFIG_KUNIT=y\n", "--kunit").expect("a valid line");
    for file in given.iter().filter(|f| !f.as_os_str().is_empty()) {
        let text = std::fs::read_to_string(file).map_err(|e| {
            hinted(
                format!("--kunit {}: {e}", file.display()),
                "pass a .kunitconfig file (KUnit's list of options)",
            )
        })?;
        let listed = Fragment::parse(&text, &file.display().to_string())
            .map_err(|e| hinted(e.to_string(), "fix the line: a .kunitconfig holds CONFIG_X=VALUE lines"))?;
        for entry in listed.entries() {
            fragment.set(entry.clone());
        }
    }
    Ok(Some(Layer { kind: Kind::Set, name: "--kunit".into(), fragment }))
}

/// The Kconfig tree of `src`, for explaining options that did not land.
pub fn load_symbols(src: &Path, arch: Arch) -> Symbols {
    Symbols::load("Kconfig", arch.kbuild(), &mut |p| std::fs::read_to_string(src.join(p)).ok())
}

/// Reads a build directory's `.config` as a fragment.
pub fn read_result(path: &Path) -> Result<Fragment> {
    let text = std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
    Fragment::parse(&text, &path.display().to_string())
        .with_context(|| format!("failed to parse {}", path.display()))
}

fn strict_error(
    misses: &[verify::Mismatch],
    symbols: &Symbols,
    result: &Fragment,
    tree: &Tree,
    prefix: &str,
) -> anyhow::Error {
    hinted(
        format!(
            "{prefix}{}: {}",
            tree.build.join(".config").display(),
            verify::report(misses, symbols, result)
        ),
        format!(
            "request what those lines depend on as well (--set CONFIG_X=y, or a --fragment), or drop the \
             option; the request is {}",
            tree.build.join(REQUESTED).display()
        ),
    )
}

/// Checks that every option of `requested` is in the build directory's
/// `.config` as requested: the error (its message after `prefix`), or the
/// number of options verified.
pub fn check(requested: &Fragment, tree: &Tree, arch: Arch, prefix: &str) -> Result<usize> {
    let result = read_result(&tree.build.join(".config"))?;
    let misses = verify::verify(requested, &result);
    if misses.is_empty() {
        return Ok(requested.entries().len());
    }
    Err(strict_error(&misses, &load_symbols(&tree.src, arch), &result, tree, prefix))
}

/// `allnoconfig, fast profile, Rust, BPF, 2 fragment(s), 1 kselftest(s), 1 --set, LLVM`,
/// after the architecture where it is not the host's (`arm64, ...`).
pub fn summary(base: &Base, req: &Request, merged: &Merged, toolchain: &Toolchain) -> String {
    let mut parts = Vec::new();
    if toolchain.arch != arch::host() {
        parts.push(toolchain.arch.to_string());
    }
    parts.push(base.to_string());
    parts.push(match req.profile {
        Profile::Fast => "fast profile".to_string(),
        Profile::Debug => "debug profile".to_string(),
    });
    parts.push(if req.rust { "Rust" } else { "no Rust" }.into());
    if req.bpf {
        parts.push("BPF".into());
    }
    let count = |kind: Kind| merged.layers.iter().filter(|(k, _)| *k == kind).count();
    if count(Kind::Fragment) > 0 {
        parts.push(format!("{} fragment(s)", count(Kind::Fragment)));
    }
    if count(Kind::Kselftest) > 0 {
        parts.push(format!("{} kselftest(s)", count(Kind::Kselftest)));
    }
    let sets = merged.entries().filter(|(i, _)| merged.layers[*i].0 == Kind::Set).count();
    if sets > 0 {
        parts.push(format!("{sets} --set"));
    }
    parts.push(match (&toolchain.cross_compile, req.llvm) {
        (_, true) => "LLVM".into(),
        (Some(prefix), false) => format!("GCC {prefix}"),
        (None, false) => "GCC".into(),
    });
    parts.join(", ")
}

/// Whether a file a base names is there for the build: absolute, or in the
/// source tree or the build directory (kbuild looks in both).
fn tree_has(tree: &Tree, file: &str) -> bool {
    let p = Path::new(file);
    if p.is_absolute() {
        p.exists()
    } else {
        tree.src.join(p).exists() || tree.build.join(p).exists()
    }
}

/// The base with kdf's fixes to it, kdf's fragments, then the user's.
fn layers(base: Option<Layer>, kdf: Fragment, user: Vec<Layer>, tree: &Tree, quiet: bool) -> Vec<Layer> {
    let mut out = Vec::new();
    if let Some(base) = base {
        let (fixes, notices) = base::fixups(&base.fragment, &|f| tree_has(tree, f));
        if !quiet {
            notices.iter().for_each(|n| say(n));
        }
        out.push(base);
        if !fixes.entries().is_empty() {
            out.push(Layer { kind: Kind::Kdf, name: "kdf's fixes to the base".into(), fragment: fixes });
        }
    }
    out.push(Layer { kind: Kind::Kdf, name: "kdf's fragments".into(), fragment: kdf });
    out.extend(user);
    out
}

/// Runs Kconfig on the merged request: `allnoconfig` with it as
/// `KCONFIG_ALLCONFIG`, or it as the `.config` over a base; then
/// `olddefconfig`. Returns the resulting `.config`.
fn kconfig(merged: &Merged, tree: &Tree, toolchain: &Toolchain) -> Result<Fragment> {
    let requested = merged.render();
    let allconfig = tree.build.join(REQUESTED);
    cache::write_atomic(&allconfig, requested.as_bytes())?;
    if merged.has(Kind::Base) {
        cache::write_atomic(&tree.build.join(".config"), requested.as_bytes())?;
    } else {
        let var = format!("KCONFIG_ALLCONFIG={}", allconfig.display());
        make::step(&tree.src, &tree.build, toolchain, vec![var], "allnoconfig")?;
    }
    make::step(&tree.src, &tree.build, toolchain, Vec::new(), "olddefconfig")?;
    read_result(&tree.build.join(".config"))
}

pub fn run(args: &ConfigOptions) -> Result<i32> {
    if args.lsmod.is_some() && !matches!(args.base, Base::LocalMod(_)) {
        return Err(usage("--lsmod is for --base localmodconfig"));
    }
    let tree = tree::resolve(args.src.as_deref(), args.build.as_deref())?;
    configure(args, &tree, false)?;
    Ok(0)
}

/// Configures `tree` as `args` ask and checks the result. `quiet` keeps
/// kdf's lines off stderr (under `kdf run --build` it is the command's); a
/// failure still says why.
pub fn configure(args: &ConfigOptions, tree: &Tree, quiet: bool) -> Result<()> {
    let started = Instant::now();
    let say = |msg: &str| {
        if !quiet {
            say(msg)
        }
    };
    tree_build::remember(tree);
    let toolchain = toolchain(args);
    let req = request(args, toolchain.arch);
    let kdf = profile::requested(&req).map_err(|e| hinted(e.to_string(), "fix the fragment's line"))?;
    for notice in &kdf.notices {
        say(notice);
    }
    let user = user_layers(args, tree, toolchain.arch)?;
    if req.llvm {
        toolchain::check_llvm()?;
    }
    toolchain::check_cross(&toolchain)?;
    std::fs::create_dir_all(&tree.build)
        .with_context(|| format!("failed to create the build directory {}", tree.build.display()))?;
    if req.rust {
        toolchain::check_rust(&tree.src, &tree.build, &toolchain)?;
    }
    // Recorded first: a later `kdf kernel build` (and kbuild's own re-runs of
    // Kconfig) must use the compiler the config was made with.
    cache::write_atomic(&tree.build.join(arch::FILE), toolchain.render().as_bytes())?;
    let base = base::prepare(&args.base, tree, &toolchain, args.lsmod.as_deref())?;
    let merged = Merged::new(layers(base, kdf.fragment, user, tree, quiet));
    let _ = std::fs::remove_file(tree.build.join(VERIFIED));
    let result = kconfig(&merged, tree, &toolchain)?;
    let symbols = load_symbols(&tree.src, toolchain.arch);
    let outcome = misses::sort(&merged, &result, &symbols, args.strict_fragments, toolchain.arch);
    let report = misses::report(&outcome, &merged, &symbols, &result);
    let report_path = tree.build.join(misses::REPORT);
    cache::write_atomic(&report_path, report.as_bytes())?;
    cache::write_atomic(&tree.build.join(VERIFIED), outcome.verified.render().as_bytes())?;
    if !outcome.strict.is_empty() {
        return Err(strict_error(&outcome.strict, &symbols, &result, tree, ""));
    }
    let (checked, landed) = outcome.best_effort_counts();
    say(&format!(
        "configured {} ({}) in {:.1} s: {} strict options verified; {landed} of {checked} best-effort options landed",
        tree.build.display(),
        summary(&args.base, &req, &merged, &toolchain),
        started.elapsed().as_secs_f64(),
        outcome.verified.entries().len(),
    ));
    let lines = misses::summary(&outcome, &merged, &symbols);
    for l in &lines {
        say(&format!("  {l}"));
    }
    if args.verbose && !lines.is_empty() {
        if !quiet {
            report.lines().for_each(line);
        }
        say(&format!("this report is in {}", report_path.display()));
    } else if !lines.is_empty() {
        say(&format!("why, option by option: {} (-v prints it)", report_path.display()));
    }
    say(&format!("next: kdf kernel build -O {}", tree.build.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kconfig::fragment::parse_set;

    #[test]
    fn the_summary_names_every_choice() {
        let mut req =
            Request { arch: arch::host(), profile: Profile::Fast, rust: true, bpf: false, llvm: false };
        let kdf = Layer { kind: Kind::Kdf, name: "kdf's fragments".into(), fragment: Fragment::default() };
        let merged = Merged::new(vec![kdf.clone()]);
        let native = Toolchain::native();
        assert_eq!(summary(&Base::AllNo, &req, &merged, &native), "allnoconfig, fast profile, Rust, GCC");
        let foreign = if arch::host() == Arch::Arm64 { Arch::X86_64 } else { Arch::Arm64 };
        let cross = Toolchain::resolve(Some(foreign), None, false, arch::host());
        assert_eq!(
            summary(&Base::AllNo, &req, &merged, &cross),
            format!("{foreign}, allnoconfig, fast profile, Rust, GCC {}", foreign.cross_prefix())
        );
        req.profile = Profile::Debug;
        req.rust = false;
        req.bpf = true;
        req.llvm = true;
        let frag = Layer { kind: Kind::Fragment, name: "--fragment a".into(), fragment: Fragment::default() };
        let test =
            Layer { kind: Kind::Kselftest, name: "--kselftest net".into(), fragment: Fragment::default() };
        let sets = inputs::sets(&[parse_set("A=y").unwrap(), parse_set("B=y").unwrap()]).unwrap();
        let merged = Merged::new(vec![kdf, frag, test, sets]);
        assert_eq!(
            summary(&Base::Def, &req, &merged, &Toolchain { llvm: true, ..native }),
            "defconfig, debug profile, no Rust, BPF, 1 fragment(s), 1 kselftest(s), 2 --set, LLVM"
        );
    }

    #[test]
    fn a_base_comes_first_then_kdfs_fixes_and_fragments_then_the_users() {
        let dir = tempfile::tempdir().unwrap();
        let tree = Tree { src: dir.path().into(), build: dir.path().join("b") };
        let base = Layer {
            kind: Kind::Base,
            name: "the base config-6.1".into(),
            fragment: Fragment::parse("CONFIG_SYSTEM_TRUSTED_KEYS=\"debian/certs/x.pem\"\n", "c").unwrap(),
        };
        let user = inputs::sets(&[parse_set("A=y").unwrap()]).into_iter().collect();
        let names: Vec<_> =
            layers(Some(base), Fragment::default(), user, &tree, true).into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["the base config-6.1", "kdf's fixes to the base", "kdf's fragments", "--set"]);
        let names: Vec<_> =
            layers(None, Fragment::default(), Vec::new(), &tree, true).into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["kdf's fragments"]);
    }

    #[test]
    fn kunit_adds_kunit_and_the_kunitconfig_options_strictly() {
        assert!(kunit_layer(&[]).unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".kunitconfig");
        std::fs::write(&file, "CONFIG_KUNIT=y\nCONFIG_KUNIT_EXAMPLE_TEST=y\n").unwrap();
        let layer = kunit_layer(&["".into(), file]).unwrap().unwrap();
        assert_eq!(layer.kind, Kind::Set, "checked strictly");
        let names: Vec<_> = layer.fragment.entries().iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, ["CONFIG_KUNIT", "CONFIG_KUNIT_EXAMPLE_TEST"]);
        assert!(kunit_layer(&[dir.path().join("missing")]).is_err());
    }
}
