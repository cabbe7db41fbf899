//! Kernels installed on the host: `/boot/vmlinuz-<V>` with `/lib/modules/<V>`.

use std::path::Path;

use anyhow::Result;

use super::file::{from_file, host_dirs, Kernel};
use crate::errors::hinted;

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
    let (boot, modules_root) = host_dirs();
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
    let mut kernel = from_file(&image, &Default::default())?;
    kernel.release = Some(version);
    kernel.modules_dir = Some(modules);
    Ok(kernel)
}

/// Orders version strings the way people read them: `6.1.10` after `6.1.9`.
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, xa), (db, xb)) in ca.iter().zip(&cb) {
        let ord = if *da && *db {
            let (na, nb) = (xa.trim_start_matches('0'), xb.trim_start_matches('0'));
            na.len().cmp(&nb.len()).then(na.cmp(nb))
        } else {
            xa.cmp(xb)
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

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

    #[test]
    fn versions_order_numerically() {
        assert_eq!(version_cmp("6.1.10-amd64", "6.1.9-amd64"), Greater);
        assert_eq!(version_cmp("6.1.0-56-amd64", "6.1.0-9-amd64"), Greater);
        assert_eq!(version_cmp("6.10", "6.9.1"), Greater);
        assert_eq!(version_cmp("6.1", "6.1"), Equal);
        assert_eq!(version_cmp("6.1", "6.1.1"), Less);
    }
}
