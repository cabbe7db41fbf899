//! The source tree and the build directory (`make O=`) a `kdf kernel`
//! command works on: found (also from inside the tree), checked, locked
//! while kdf builds, and named in errors with the fix.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};

use crate::errors::hinted;
use crate::ui::say;

/// The build directory's name under the source tree when `-O` is not given.
/// Hidden, so the kernel's own `.gitignore` (`.*`) keeps `git status` clean.
pub const DEFAULT_BUILD: &str = ".kdf-build";

/// A source tree and its build directory, both absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub src: PathBuf,
    pub build: PathBuf,
}

/// The source tree a build directory's generated `Makefile` points at:
/// `include /abs/src/Makefile` (written by the kernel for every `O=` build).
pub fn src_of_build_makefile(text: &str) -> Option<PathBuf> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("include "))
        .map(|p| Path::new(p.trim()))
        .find(|p| p.file_name().is_some_and(|n| n == "Makefile"))
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
}

/// What makes a directory the top of a kernel source tree.
pub fn looks_like_source(dir: &Path) -> bool {
    ["Makefile", "Kconfig", "arch/x86/Kconfig", "scripts/kconfig"].iter().all(|p| dir.join(p).exists())
}

/// Whether a Makefile is a kernel tree's top-level one: it sets `VERSION`
/// and `PATCHLEVEL` (the Makefiles of subdirectories and of `O=` build
/// directories do not).
pub fn is_top_makefile(text: &str) -> bool {
    let sets = |var: &str| {
        text.lines().any(|l| l.strip_prefix(var).is_some_and(|rest| rest.trim_start().starts_with('=')))
    };
    sets("VERSION") && sets("PATCHLEVEL")
}

/// Whether `dir` is the top of a kernel source tree: a top-level Makefile
/// and a Kconfig.
pub fn is_top(dir: &Path) -> bool {
    use std::io::Read;
    if !dir.join("Kconfig").is_file() {
        return false;
    }
    // VERSION and PATCHLEVEL are in the first lines; the whole file is 70 KB.
    let mut head = String::new();
    let read = File::open(dir.join("Makefile")).and_then(|f| f.take(4096).read_to_string(&mut head));
    read.is_ok() && is_top_makefile(&head)
}

/// The kernel source tree `start` is in: the nearest of `start` and its
/// ancestors that `is_top` accepts.
pub fn find_source(start: &Path, is_top: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    start.ancestors().find(|d| is_top(d)).map(Path::to_path_buf)
}

/// In-tree configuration left in `src`, which `make O=` refuses (the kernel's
/// "source tree is not clean"), if any.
pub fn in_tree_leftover(src: &Path) -> Option<PathBuf> {
    [".config", "include/config", "arch/x86/include/generated", "arch/arm64/include/generated"]
        .iter()
        .map(|p| src.join(p))
        .find(|p| p.exists())
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("failed to resolve {}", p.display()))
}

fn check_source(src: &Path) -> Result<()> {
    if !looks_like_source(src) {
        return Err(hinted(
            format!("{} is not a Linux source tree (no Kconfig, arch/x86, scripts/kconfig)", src.display()),
            "run kdf in the top directory of a kernel source tree, or pass --src DIR",
        ));
    }
    Ok(())
}

/// Resolves `--src` and `-O`. Without `--src`, a build directory made by the
/// kernel names its source; else the current directory is the source.
pub fn resolve(src: Option<&Path>, build: Option<&Path>) -> Result<Tree> {
    let build = build.map(absolute).transpose()?;
    let src = match (src, &build) {
        (Some(s), _) => absolute(s)?,
        (None, Some(b)) => {
            match std::fs::read_to_string(b.join("Makefile")).ok().as_deref().and_then(src_of_build_makefile)
            {
                Some(s) => s,
                None => absolute(Path::new("."))?,
            }
        }
        (None, None) => absolute(Path::new("."))?,
    };
    check_source(&src)?;
    let build = build.unwrap_or_else(|| src.join(DEFAULT_BUILD));
    if build != src {
        if let Some(leftover) = in_tree_leftover(&src) {
            return Err(hinted(
                format!(
                    "the source tree {} was configured in place ({} exists), so `make O=` refuses it",
                    src.display(),
                    leftover.display()
                ),
                format!(
                    "keep your .config if you need it (pass it later with --fragment), then clean the \
                     tree: make -C {} mrproper",
                    src.display()
                ),
            ));
        }
    }
    Ok(Tree { src, build })
}

/// Held while kdf configures or builds in a build directory.
const LOCK_FILE: &str = ".kdf-lock";

/// The build directory's lock (`BUILD/.kdf-lock`), waited for with a notice
/// when another kdf configures or builds there; `say_wait` is false when
/// stderr is the command's.
pub fn lock(build: &Path, say_wait: bool) -> Result<Flock<File>> {
    std::fs::create_dir_all(build)
        .with_context(|| format!("failed to create the build directory {}", build.display()))?;
    let path = build.join(LOCK_FILE);
    let file = File::create(&path).with_context(|| format!("failed to create {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((file, _)) => {
            if say_wait {
                say(&format!("waiting for another kdf build of {} to finish", build.display()));
            }
            Flock::lock(file, FlockArg::LockExclusive)
                .map_err(|(_, e)| e)
                .with_context(|| format!("failed to lock {}", path.display()))
        }
    }
}

/// The build directory's `.config`, with the fix when it has none.
pub fn config_path(tree: &Tree) -> Result<PathBuf> {
    let path = tree.build.join(".config");
    if !path.exists() {
        return Err(hinted(
            format!("{} is not configured (no .config)", tree.build.display()),
            format!(
                "configure it first: kdf kernel config --src {} -O {}",
                tree.src.display(),
                tree.build.display()
            ),
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_source() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for d in ["arch/x86", "scripts/kconfig"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        for f in ["Makefile", "Kconfig", "arch/x86/Kconfig"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        dir
    }

    #[test]
    fn only_a_makefile_that_sets_version_and_patchlevel_is_the_top_one() {
        assert!(is_top_makefile("# SPDX\nVERSION = 7\nPATCHLEVEL = 3\nSUBLEVEL = 4\n"));
        assert!(is_top_makefile("VERSION=6\nPATCHLEVEL=1\n"));
        assert!(!is_top_makefile("obj-y += fork.o\n"));
        assert!(!is_top_makefile("VERSION = 7\n"), "no PATCHLEVEL");
        assert!(!is_top_makefile("VERSION_X = 7\nPATCHLEVEL = 3\n"));
        // An O= build directory's generated Makefile only includes the source's.
        assert!(!is_top_makefile("export KBUILD_OUTPUT = /b\ninclude /src/linux/Makefile\n"));
    }

    #[test]
    fn the_source_is_found_from_a_subdirectory_upwards() {
        let src = fake_source();
        std::fs::write(src.path().join("Makefile"), "VERSION = 7\nPATCHLEVEL = 3\n").unwrap();
        let sub = src.path().join("fs/fuse");
        std::fs::create_dir_all(&sub).unwrap();
        // A subdirectory has its own Makefile and Kconfig, without VERSION.
        std::fs::write(src.path().join("fs/Makefile"), "obj-y += fuse/\n").unwrap();
        std::fs::write(src.path().join("fs/Kconfig"), "").unwrap();
        assert_eq!(find_source(&sub, is_top).as_deref(), Some(src.path()));
        assert_eq!(find_source(src.path(), is_top).as_deref(), Some(src.path()));
        let elsewhere = tempfile::tempdir().unwrap();
        assert_eq!(find_source(elsewhere.path(), is_top), None);
    }

    #[test]
    fn the_generated_makefile_names_the_source() {
        let text = "# Automatically generated by /src/linux/Makefile: don't edit\n\
                    export KBUILD_OUTPUT = /b\ninclude /src/linux/Makefile\n";
        assert_eq!(src_of_build_makefile(text), Some(PathBuf::from("/src/linux")));
        assert_eq!(src_of_build_makefile("all:\n\ttrue\n"), None);
    }

    #[test]
    fn the_build_directory_defaults_to_a_hidden_one_in_the_source() {
        let src = fake_source();
        let tree = resolve(Some(src.path()), None).unwrap();
        assert_eq!(tree.build, src.path().join(DEFAULT_BUILD));
    }

    #[test]
    fn the_source_is_found_through_the_build_directory() {
        let src = fake_source();
        let build = tempfile::tempdir().unwrap();
        std::fs::write(build.path().join("Makefile"), format!("include {}/Makefile\n", src.path().display()))
            .unwrap();
        let tree = resolve(None, Some(build.path())).unwrap();
        assert_eq!(tree.src, src.path());
    }

    #[test]
    fn a_directory_that_is_not_a_source_tree_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(Some(dir.path()), None).unwrap_err();
        assert!(format!("{err:#}").contains("is not a Linux source tree"), "{err:#}");
    }

    #[test]
    fn an_in_tree_config_is_refused_with_the_fix() {
        let src = fake_source();
        std::fs::write(src.path().join(".config"), "CONFIG_X=y\n").unwrap();
        let err = resolve(Some(src.path()), None).unwrap_err();
        assert!(format!("{err:#}").contains("was configured in place"), "{err:#}");
        assert!(crate::errors::hint_of(&err).unwrap().contains("mrproper"));
        // Building in place is the user's choice, and allowed.
        assert!(resolve(Some(src.path()), Some(src.path())).is_ok());
    }

    #[test]
    fn an_unconfigured_build_directory_says_to_configure_it() {
        let src = fake_source();
        let tree = resolve(Some(src.path()), None).unwrap();
        let err = config_path(&tree).unwrap_err();
        assert!(crate::errors::hint_of(&err).unwrap().starts_with("configure it first: kdf kernel config"));
    }
}
