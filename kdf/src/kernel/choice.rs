//! Which kernel to boot, and why: `--kernel` and `--release` when given;
//! else, inside a kernel source tree, that tree's build (`--build` builds it
//! first); else the newest installed kernel. The facts (the tree around the
//! working directory, its build) are gathered first; the choice is a pure
//! function of them.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::Source;
use crate::errors::{usage, usage_hinted};
use crate::kbuild::tree::{self, Tree, DEFAULT_BUILD};
use crate::kbuild::tree_build::{self, Local};

/// What the command line says about the kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags<'a> {
    pub kernel: Option<&'a Path>,
    pub release: Option<&'a str>,
    /// `kdf run --build`.
    pub build: bool,
}

/// What the host says, gathered by [`gather`].
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub cwd: PathBuf,
    /// The kernel tree around the working directory, and its build.
    pub local: Option<Local>,
    /// With `--kernel PATH`: PATH exists and is not a directory.
    pub kernel_is_file: bool,
    /// With `--kernel DIR`: the source tree DIR's generated Makefile names.
    pub kernel_src: Option<PathBuf>,
}

/// The kernel to boot, why, and what to do first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub source: Source,
    /// Which kernel and why, for `-v` and `--dry-run`.
    pub why: String,
    /// A line for a terminal where the choice may surprise (a tree without
    /// a build boots an installed kernel).
    pub hint: Option<String>,
    /// `--build`: the tree to build before booting.
    pub build_first: Option<Tree>,
}

fn installed(why: String, hint: Option<String>) -> Choice {
    Choice { source: Source::Release(None), why, hint, build_first: None }
}

fn release_why(source: &Source) -> String {
    match source {
        Source::Release(None) => "the newest installed kernel (--release)".into(),
        Source::Release(Some(v)) => format!("the installed kernel {v} (--release)"),
        Source::Nix(None) => "nixpkgs' linuxPackages (--release nix)".into(),
        Source::Nix(Some(s)) => format!("nixpkgs' linuxPackages {s} (--release nix:{s})"),
        Source::Path(p) => p.display().to_string(),
    }
}

/// `--build` with `--kernel PATH`: PATH must be a build directory whose
/// source is known.
fn build_explicit(dir: &Path, facts: &Facts) -> Result<Choice> {
    let build = facts.cwd.join(dir);
    if facts.kernel_is_file {
        return Err(usage_hinted(
            format!("--build needs a build directory, and --kernel {} is a file", dir.display()),
            "pass the build directory (`make O=...`, e.g. .kdf-build), or drop --build",
        ));
    }
    let Some(src) = facts.kernel_src.clone().or_else(|| facts.local.as_ref().map(|l| l.src.clone())) else {
        return Err(usage_hinted(
            format!(
                "--build: cannot tell which source tree {} is a build of (it was never configured, and {} is \
                 in no kernel source tree)",
                build.display(),
                facts.cwd.display()
            ),
            format!(
                "run kdf in the source tree, or configure it first: kdf kernel config --src SRC -O {}",
                build.display()
            ),
        ));
    };
    let why = format!("{} (--kernel), built first from {}", build.display(), src.display());
    Ok(Choice {
        source: Source::Path(build.clone()),
        why,
        hint: None,
        build_first: Some(Tree { src, build }),
    })
}

/// `--build` without `--kernel`: the tree around the working directory.
fn build_local(facts: &Facts) -> Result<Choice> {
    let Some(local) = &facts.local else {
        return Err(usage_hinted(
            format!(
                "--build: {} is in no kernel source tree (no Makefile with VERSION and PATCHLEVEL and a \
                 Kconfig there or above)",
                facts.cwd.display()
            ),
            "run it inside a kernel source tree, or name a build directory: --kernel BUILD_DIR --build",
        ));
    };
    let (build, why) = match &local.build {
        Some(b) => (
            b.dir.clone(),
            format!(
                "{}, the build of the kernel tree {} ({})",
                b.dir.display(),
                local.src.display(),
                b.how.describe()
            ),
        ),
        None => {
            let dir = local.src.join(DEFAULT_BUILD);
            (
                dir.clone(),
                format!(
                    "{}, a new build of the kernel tree {} (kdf's default config)",
                    dir.display(),
                    local.src.display()
                ),
            )
        }
    };
    Ok(Choice {
        source: Source::Path(build.clone()),
        why: format!("{why}, built first (--build)"),
        hint: None,
        build_first: Some(Tree { src: local.src.clone(), build }),
    })
}

/// The choice for `flags` given `facts`.
pub fn choose(flags: &Flags, facts: &Facts) -> Result<Choice> {
    if flags.build && flags.release.is_some() {
        return Err(usage("--build builds a kernel tree; --release boots an installed kernel: pick one"));
    }
    match (flags.kernel, flags.release) {
        (Some(dir), _) if flags.build => build_explicit(dir, facts),
        (Some(path), _) => Ok(Choice {
            source: Source::Path(path.to_path_buf()),
            why: format!("{} (--kernel)", path.display()),
            hint: None,
            build_first: None,
        }),
        (None, Some(r)) => {
            let source = Source::from_release(r);
            Ok(Choice { why: release_why(&source), source, hint: None, build_first: None })
        }
        (None, None) if flags.build => build_local(facts),
        (None, None) => Ok(default_choice(facts.local.as_ref())),
    }
}

/// No flags: the build of the tree around the working directory, else the
/// newest installed kernel.
fn default_choice(local: Option<&Local>) -> Choice {
    let Some(Local { src, build }) = local else {
        let why = "the newest installed kernel (the working directory is in no kernel source tree)";
        return installed(why.into(), None);
    };
    let state = match build {
        Some(b) if b.built => {
            return Choice {
                source: Source::Path(b.dir.clone()),
                why: format!(
                    "{}, the build of the kernel tree {} around the working directory ({}); --release \
                     boots an installed kernel instead",
                    b.dir.display(),
                    src.display(),
                    b.how.describe()
                ),
                hint: None,
                build_first: None,
            }
        }
        Some(b) => format!("its build {} holds no kernel yet", b.dir.display()),
        None => "it has no kdf build".into(),
    };
    let why = format!(
        "the newest installed kernel: the kernel tree {} is around the working directory, but {state}",
        src.display()
    );
    let hint = format!(
        "booting the newest installed kernel: the kernel tree {} has no built kernel; `kdf run --build` \
         builds and boots it",
        src.display()
    );
    installed(why, Some(hint))
}

/// The facts [`choose`] needs, from the working directory.
pub fn gather(flags: &Flags) -> Result<Facts> {
    let cwd = crate::shares::current_dir()?;
    // Only a choice that may need the tree looks for one.
    let local = if flags.release.is_none() && (flags.kernel.is_none() || flags.build) {
        tree_build::locate(&cwd)
    } else {
        None
    };
    let kernel = flags.kernel.map(|k| cwd.join(k));
    let kernel_src = kernel.as_deref().filter(|_| flags.build).and_then(|dir| {
        let text = std::fs::read_to_string(dir.join("Makefile")).ok()?;
        tree::src_of_build_makefile(&text)
    });
    let kernel_is_file = kernel.as_deref().is_some_and(|k| k.exists() && !k.is_dir());
    Ok(Facts { cwd, local, kernel_is_file, kernel_src })
}

/// [`gather`], then [`choose`].
pub fn decide(flags: &Flags) -> Result<Choice> {
    choose(flags, &gather(flags)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::{hint_of, is_usage};
    use crate::kbuild::tree_build::{How, TreeBuild};

    fn facts(local: Option<Local>) -> Facts {
        Facts { cwd: "/src/linux/fs".into(), local, ..Facts::default() }
    }

    fn tree(build: Option<(&str, bool)>) -> Option<Local> {
        Some(Local {
            src: "/src/linux".into(),
            build: build.map(|(dir, built)| TreeBuild { dir: dir.into(), how: How::Recorded, built }),
        })
    }

    const NONE: Flags = Flags { kernel: None, release: None, build: false };
    const BUILD: Flags = Flags { kernel: None, release: None, build: true };

    #[test]
    fn outside_a_tree_the_newest_installed_kernel_is_booted_without_a_hint() {
        let c = choose(&NONE, &facts(None)).unwrap();
        assert_eq!((c.source, c.hint, c.build_first), (Source::Release(None), None, None));
        assert!(c.why.contains("in no kernel source tree"), "{}", c.why);
    }

    #[test]
    fn inside_a_tree_its_build_is_booted_and_the_reason_names_both() {
        let c = choose(&NONE, &facts(tree(Some(("/b", true))))).unwrap();
        assert_eq!(c.source, Source::Path("/b".into()));
        assert_eq!((c.hint, c.build_first), (None, None));
        assert!(c.why.starts_with("/b, the build of the kernel tree /src/linux around"), "{}", c.why);
        assert!(c.why.contains("(the one `kdf kernel config|build` last used)"), "{}", c.why);
    }

    #[test]
    fn a_tree_without_a_built_kernel_boots_the_installed_one_with_a_hint() {
        for local in [tree(None), tree(Some(("/b", false)))] {
            let c = choose(&NONE, &facts(local)).unwrap();
            assert_eq!(c.source, Source::Release(None));
            assert!(c.hint.as_deref().unwrap().contains("`kdf run --build` builds and boots it"));
            assert!(!c.hint.as_deref().unwrap().contains('\n'), "one line");
            assert!(c.why.contains("/src/linux"), "{}", c.why);
        }
        let c = choose(&NONE, &facts(tree(Some(("/b", false))))).unwrap();
        assert!(c.why.contains("its build /b holds no kernel yet"), "{}", c.why);
    }

    #[test]
    fn kernel_and_release_win_over_the_tree() {
        let f = facts(tree(Some(("/b", true))));
        let k = Flags { kernel: Some(Path::new("/boot/vmlinuz-6.1")), ..NONE };
        let c = choose(&k, &f).unwrap();
        assert_eq!(
            (c.source, c.why.as_str()),
            (Source::Path("/boot/vmlinuz-6.1".into()), "/boot/vmlinuz-6.1 (--kernel)")
        );
        let c = choose(&Flags { release: Some(""), ..NONE }, &f).unwrap();
        assert_eq!(
            (c.source, c.why.as_str()),
            (Source::Release(None), "the newest installed kernel (--release)")
        );
        let c = choose(&Flags { release: Some("nix:6.12"), ..NONE }, &f).unwrap();
        assert_eq!(c.source, Source::Nix(Some("6.12".into())));
    }

    #[test]
    fn build_rebuilds_the_trees_build_or_makes_kdf_build() {
        let c = choose(&BUILD, &facts(tree(Some(("/b", false))))).unwrap();
        assert_eq!(c.source, Source::Path("/b".into()));
        assert_eq!(c.build_first, Some(Tree { src: "/src/linux".into(), build: "/b".into() }));
        assert!(c.why.ends_with("built first (--build)"), "{}", c.why);
        let c = choose(&BUILD, &facts(tree(None))).unwrap();
        let default = PathBuf::from("/src/linux/.kdf-build");
        assert_eq!(c.source, Source::Path(default.clone()));
        assert_eq!(c.build_first, Some(Tree { src: "/src/linux".into(), build: default }));
        assert!(c.why.contains("a new build"), "{}", c.why);
    }

    #[test]
    fn build_outside_a_tree_is_a_usage_error_with_the_way_out() {
        let err = choose(&BUILD, &facts(None)).unwrap_err();
        assert!(is_usage(&err));
        assert!(format!("{err:#}").contains("/src/linux/fs is in no kernel source tree"), "{err:#}");
        assert!(hint_of(&err).unwrap().contains("--kernel BUILD_DIR --build"));
        let err = choose(&Flags { release: Some(""), ..BUILD }, &facts(tree(None))).unwrap_err();
        assert!(is_usage(&err));
    }

    #[test]
    fn build_with_a_kernel_directory_builds_that_directory() {
        let k = Flags { kernel: Some(Path::new("../o")), ..BUILD };
        // The source comes from the directory's Makefile, else from the tree around.
        let f = Facts { kernel_src: Some("/elsewhere/linux".into()), ..facts(tree(None)) };
        let c = choose(&k, &f).unwrap();
        let tree = c.build_first.unwrap();
        assert_eq!(
            (tree.src.as_path(), tree.build.as_path()),
            (Path::new("/elsewhere/linux"), Path::new("/src/linux/fs/../o"))
        );
        let c = choose(&k, &facts(self::tree(None))).unwrap();
        assert_eq!(c.build_first.unwrap().src, PathBuf::from("/src/linux"));
        let err = choose(&k, &facts(None)).unwrap_err();
        assert!(
            is_usage(&err) && hint_of(&err).unwrap().contains("kdf kernel config --src SRC -O"),
            "{err:#}"
        );
        let err = choose(&k, &Facts { kernel_is_file: true, ..facts(self::tree(None)) }).unwrap_err();
        assert!(format!("{err:#}").contains("--build needs a build directory"), "{err:#}");
    }
}
