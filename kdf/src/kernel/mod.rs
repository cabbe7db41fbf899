//! Which kernel to boot, and everything known about it: the file QEMU boots
//! (a PVH `vmlinux` where possible), its release, its modules and its config.

pub mod boot;
pub mod build_dir;
pub mod choice;
pub mod file;
pub mod image;
pub mod installed;
pub mod nix_kernel;
pub mod places;
pub mod vmlinux;

use std::path::PathBuf;

use anyhow::Result;

use file::from_file;
pub use file::Kernel;
pub use places::Places;

/// Where the user said the kernel is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--kernel PATH`: a bzImage, a `vmlinux`, or a kernel build directory.
    Path(PathBuf),
    /// `--release [VERSION]`: a kernel installed on the host; newest if `None`.
    Release(Option<String>),
    /// `--release nix[:X.Y]`: nixpkgs' `linuxPackages[_X_Y]`.
    Nix(Option<String>),
}

impl Source {
    /// `--release`'s value: `nix`, `nix:6.12`, a version, or empty (newest).
    pub fn from_release(value: &str) -> Source {
        match value {
            "" => Source::Release(None),
            "nix" => Source::Nix(None),
            v => match v.strip_prefix("nix:") {
                Some(series) => Source::Nix(Some(series.to_string())),
                None => Source::Release(Some(v.to_string())),
            },
        }
    }
}

/// The kernel `source` names, its modules and config found in `places`;
/// `--modules-dir` overrides wherever they were found.
pub fn resolve(source: &Source, places: &Places) -> Result<Kernel> {
    let mut kernel = match source {
        Source::Path(p) if p.is_dir() => build_dir::resolve(p),
        Source::Path(p) => from_file(p, places),
        Source::Release(v) => installed::resolve(v.as_deref()),
        Source::Nix(series) => nix_kernel::resolve(series.as_deref()),
    }?;
    if let Some(dir) = &places.modules_dir {
        let modules = places::modules_override(dir, kernel.release.as_deref())?;
        kernel.modules_dir = Some(modules.dir);
        kernel.guest_modules = modules.lib_modules;
    }
    Ok(kernel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_values_pick_the_source() {
        assert_eq!(Source::from_release(""), Source::Release(None));
        assert_eq!(Source::from_release("6.1.0-56-amd64"), Source::Release(Some("6.1.0-56-amd64".into())));
        assert_eq!(Source::from_release("nix"), Source::Nix(None));
        assert_eq!(Source::from_release("nix:6.12"), Source::Nix(Some("6.12".into())));
    }
}
