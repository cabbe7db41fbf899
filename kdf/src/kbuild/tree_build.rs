//! Which build directory belongs to a kernel source tree, for `kdf run`
//! inside the tree: the one `kdf kernel config|build` last used for it
//! (recorded in kdf's cache), else `SRC/.kdf-build`, else the tree itself
//! when it was configured in place.

use std::path::{Path, PathBuf};

use super::tree::{self, Tree, DEFAULT_BUILD};
use crate::cache;

/// How a tree's build directory was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// The directory `kdf kernel config|build` last used for the tree.
    Recorded,
    /// `SRC/.kdf-build`.
    Default,
    /// The source tree itself (`make` run in place).
    InPlace,
}

impl How {
    pub fn describe(self) -> &'static str {
        match self {
            How::Recorded => "the one `kdf kernel config|build` last used",
            How::Default => "its .kdf-build",
            How::InPlace => "built in place",
        }
    }
}

/// A source tree's build directory and whether it holds a kernel yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeBuild {
    pub dir: PathBuf,
    pub how: How,
    pub built: bool,
}

/// The kernel tree around a directory, and its build if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub src: PathBuf,
    pub build: Option<TreeBuild>,
}

/// The first of the recorded directory, `SRC/.kdf-build` and `SRC` itself
/// that `is_build_of_src` accepts.
pub fn pick(
    src: &Path,
    recorded: Option<PathBuf>,
    is_build_of_src: impl Fn(&Path) -> bool,
) -> Option<(PathBuf, How)> {
    if let Some(dir) = recorded.filter(|d| is_build_of_src(d)) {
        return Some((dir, How::Recorded));
    }
    let default = src.join(DEFAULT_BUILD);
    if is_build_of_src(&default) {
        return Some((default, How::Default));
    }
    is_build_of_src(src).then(|| (src.to_path_buf(), How::InPlace))
}

fn canonical(p: &Path) -> Option<PathBuf> {
    p.canonicalize().ok()
}

/// Whether `dir` is a build directory of `src`: `src` itself with a
/// `.config`, or an `O=` directory whose generated Makefile includes `src`'s.
pub fn is_build_of(dir: &Path, src: &Path) -> bool {
    let (Some(dir), Some(src)) = (canonical(dir), canonical(src)) else { return false };
    if dir == src {
        return dir.join(".config").is_file();
    }
    std::fs::read_to_string(dir.join("Makefile"))
        .ok()
        .as_deref()
        .and_then(tree::src_of_build_makefile)
        .and_then(|s| canonical(&s))
        .is_some_and(|s| s == src)
}

/// Whether a build directory holds a kernel to boot.
pub fn is_built(dir: &Path) -> bool {
    dir.join("vmlinux").is_file() || dir.join("arch/x86/boot/bzImage").is_file()
}

/// The cache file that records `src`'s build directory.
fn record_file(src: &Path) -> Option<PathBuf> {
    let src = canonical(src)?;
    Some(cache::subdir("trees").ok()?.join(cache::digest([src.as_os_str().as_encoded_bytes()])))
}

/// Records `tree.build` as the build directory of `tree.src`. Best effort:
/// a cache that cannot be written only means `kdf run` inside the tree
/// falls back to `.kdf-build`.
pub fn remember(tree: &Tree) {
    let (Some(file), Some(build)) = (record_file(&tree.src), canonical(&tree.build)) else { return };
    let _ = cache::write_atomic(&file, build.as_os_str().as_encoded_bytes());
}

/// The build directory recorded for `src`, if any.
pub fn recorded(src: &Path) -> Option<PathBuf> {
    let text = std::fs::read(record_file(src)?).ok()?;
    Some(PathBuf::from(String::from_utf8(text).ok()?))
}

/// The kernel tree `dir` is in (itself or an ancestor) and its build.
pub fn locate(dir: &Path) -> Option<Local> {
    let src = tree::find_source(dir, tree::is_top)?;
    let build = pick(&src, recorded(&src), |d| is_build_of(d, &src)).map(|(dir, how)| TreeBuild {
        built: is_built(&dir),
        dir,
        how,
    });
    Some(Local { src, build })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_build_comes_first_then_kdf_build_then_in_place() {
        let src = Path::new("/src/linux");
        let all = |_: &Path| true;
        assert_eq!(pick(src, Some("/b".into()), all), Some(("/b".into(), How::Recorded)));
        assert_eq!(pick(src, None, all), Some(("/src/linux/.kdf-build".into(), How::Default)));
        let stale = |d: &Path| d != Path::new("/b");
        assert_eq!(pick(src, Some("/b".into()), stale), Some(("/src/linux/.kdf-build".into(), How::Default)));
        let in_place = |d: &Path| d == src;
        assert_eq!(pick(src, Some("/b".into()), in_place), Some(("/src/linux".into(), How::InPlace)));
        assert_eq!(pick(src, Some("/b".into()), |_: &Path| false), None);
    }

    #[test]
    fn a_build_directory_belongs_to_the_source_its_makefile_includes() {
        let src = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let build = tempfile::tempdir().unwrap();
        assert!(!is_build_of(build.path(), src.path()), "no Makefile yet");
        let include = format!("include {}/Makefile\n", src.path().display());
        std::fs::write(build.path().join("Makefile"), include).unwrap();
        assert!(is_build_of(build.path(), src.path()));
        assert!(!is_build_of(build.path(), other.path()));
        assert!(!is_build_of(&src.path().join("gone"), src.path()));
        assert!(!is_build_of(src.path(), src.path()), "in place needs a .config");
        std::fs::write(src.path().join(".config"), "").unwrap();
        assert!(is_build_of(src.path(), src.path()));
    }

    #[test]
    fn a_build_without_a_kernel_image_is_not_built() {
        let build = tempfile::tempdir().unwrap();
        assert!(!is_built(build.path()));
        std::fs::create_dir_all(build.path().join("arch/x86/boot")).unwrap();
        std::fs::write(build.path().join("arch/x86/boot/bzImage"), "").unwrap();
        assert!(is_built(build.path()));
    }
}
