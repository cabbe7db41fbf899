//! `--release nix[:X.Y]`: a kernel from nixpkgs (`linuxPackages` or
//! `linuxPackages_X_Y`), realised with `nix build`. A failed build is an error,
//! never a silent fallback to another kernel.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::file::{from_file, Kernel};
use crate::nix;

/// The nixpkgs attribute for a series: `None` is the default kernel.
pub fn attribute(series: Option<&str>) -> String {
    match series {
        None => "linuxPackages".to_string(),
        Some(s) => format!("linuxPackages_{}", s.replace('.', "_")),
    }
}

pub fn resolve(series: Option<&str>) -> Result<Kernel> {
    let attr = attribute(series);
    let paths = nix::build(&[format!("nixpkgs#{attr}.kernel"), format!("nixpkgs#{attr}.kernel.modules")])?;
    let [out, modules] = paths.as_slice() else {
        bail!("nix build printed {} paths for {attr}.kernel and its modules, expected 2", paths.len());
    };
    let mut kernel = from_file(&out.join("bzImage"), &Default::default())?;
    let lib_modules = modules.join("lib/modules");
    let release = only_entry(&lib_modules)?;
    kernel.modules_dir = Some(lib_modules.join(&release));
    kernel.guest_modules = Some(lib_modules);
    kernel.release = Some(release);
    Ok(kernel)
}

fn only_entry(dir: &Path) -> Result<String> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("failed to list {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    match (names.pop(), names.is_empty()) {
        (Some(p), true) => Ok(p.file_name().unwrap_or_default().to_string_lossy().into_owned()),
        _ => bail!("expected exactly one kernel release in {}", dir.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_map_to_nixpkgs_attributes() {
        assert_eq!(attribute(None), "linuxPackages");
        assert_eq!(attribute(Some("6.12")), "linuxPackages_6_12");
        assert_eq!(attribute(Some("latest")), "linuxPackages_latest");
    }
}
