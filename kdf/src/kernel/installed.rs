//! Kernels installed on the host: `/boot/vmlinuz-<V>` with `/lib/modules/<V>`.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::{from_file, version_cmp, Kernel};
use crate::errors::hinted;

/// `/boot` and `/lib/modules`, or `KDF_BOOT_DIR`/`KDF_MODULES_DIR` for
/// unusual layouts (and tests).
pub fn dirs() -> (PathBuf, PathBuf) {
    let get =
        |var: &str, default: &str| std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| default.into());
    (get("KDF_BOOT_DIR", "/boot"), get("KDF_MODULES_DIR", "/lib/modules"))
}

/// Releases with both an image and a module directory, newest last.
pub fn releases(boot: &Path, modules: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(boot)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("vmlinuz-").map(str::to_string))
        .filter(|v| modules.join(v).is_dir())
        .collect();
    found.sort_by(|a, b| version_cmp(a, b));
    found
}

pub fn resolve(version: Option<&str>) -> Result<Kernel> {
    let (boot, modules_root) = dirs();
    let version = match version {
        Some(v) => v.to_string(),
        None => releases(&boot, &modules_root).pop().ok_or_else(|| {
            hinted(
                format!(
                    "no installed kernel found (looked for {}/vmlinuz-<V> with {}/<V>)",
                    boot.display(),
                    modules_root.display()
                ),
                "install one (`sudo apt install linux-image-amd64`), or pass --kernel PATH",
            )
        })?,
    };
    let image = boot.join(format!("vmlinuz-{version}"));
    let modules = modules_root.join(&version);
    if !image.exists() {
        return Err(hinted(
            format!("kernel release {version} is not installed: {} does not exist", image.display()),
            format!("installed releases: {}", releases(&boot, &modules_root).join(", ")),
        ));
    }
    if !modules.join("modules.dep").exists() {
        return Err(hinted(
            format!(
                "kernel release {version} has no modules: {} is missing",
                modules.join("modules.dep").display()
            ),
            format!("install the package with {}'s modules (Debian: linux-image-{version})", version),
        ));
    }
    let mut kernel = from_file(&image)?;
    kernel.release = Some(version);
    kernel.modules_dir = Some(modules);
    Ok(kernel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_releases_with_modules_count_newest_last() {
        let dir = tempfile::tempdir().unwrap();
        let (boot, modules) = (dir.path().join("boot"), dir.path().join("modules"));
        std::fs::create_dir_all(&boot).unwrap();
        for v in ["6.1.0-9-amd64", "6.1.0-56-amd64", "6.2.0-1-amd64"] {
            std::fs::write(boot.join(format!("vmlinuz-{v}")), "").unwrap();
        }
        for v in ["6.1.0-9-amd64", "6.1.0-56-amd64"] {
            std::fs::create_dir_all(modules.join(v)).unwrap();
        }
        std::fs::write(boot.join("config-6.1.0-56-amd64"), "").unwrap();
        assert_eq!(releases(&boot, &modules), ["6.1.0-9-amd64", "6.1.0-56-amd64"]);
    }
}
