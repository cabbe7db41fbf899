//! Where a kernel file's modules and config are: `--modules-dir`, else next
//! to the image as a package unpacks them (`<image dir>/../lib/modules/<R>`,
//! `<image dir>/config-<R>`, as `dpkg -x linux-image-R.deb` lays them out),
//! else installed on the host, else inside `--root`.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::errors::hinted;
use crate::shares::view::View;
use crate::shares::ShareSpec;

/// What the user said about where a kernel's files are, beyond the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Places {
    /// `--modules-dir`: a directory holding `<release>/` or the release's own.
    pub modules_dir: Option<PathBuf>,
    /// `--root`: the guest's root directory.
    pub root: Option<PathBuf>,
}

/// A kernel's modules: the directory with `modules.dep`, and the host
/// directory the guest mounts on `/lib/modules` when it is a whole
/// `lib/modules` of its own (`None`: mounted at `/lib/modules/<R>`, or
/// already there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modules {
    pub dir: PathBuf,
    pub lib_modules: Option<PathBuf>,
}

fn same(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `release`'s directory under `dir` inside `root`, symlinks resolved as
/// the guest would (a root's `/lib` may be an absolute link to `/usr/lib`).
fn in_root(root: &Path, guest: &Path) -> Option<PathBuf> {
    let shares = [ShareSpec { guest: "/".into(), ..ShareSpec::same_path(root.to_path_buf(), true) }];
    View::new(&shares).host_path(guest)
}

/// The places to look for a kernel file's modules, in order. `host` is the
/// host's `/lib/modules` (or `KDF_MODULES_DIR`).
pub fn module_candidates(image: &Path, release: &str, host: &Path, root: Option<&Path>) -> Vec<Modules> {
    let mut out = Vec::new();
    if let Some(package) = image.parent().and_then(Path::parent).map(|p| p.join("lib/modules")) {
        // An image in the host's /boot is the installed kernel's own.
        let lib_modules = (!same(&package, host)).then(|| package.clone());
        out.push(Modules { dir: package.join(release), lib_modules });
    }
    out.push(Modules { dir: host.join(release), lib_modules: None });
    if let Some(dir) = root.and_then(|r| in_root(r, &Path::new("/lib/modules").join(release))) {
        out.push(Modules { dir, lib_modules: None });
    }
    out
}

/// The places to look for a kernel file's config, in order; `boot` is the
/// host's `/boot` (or `KDF_BOOT_DIR`).
pub fn config_candidates(image: &Path, release: &str, boot: &Path, root: Option<&Path>) -> Vec<PathBuf> {
    let name = format!("config-{release}");
    let mut out: Vec<PathBuf> = image.parent().map(|d| d.join(&name)).into_iter().collect();
    out.push(boot.join(&name));
    out.extend(root.and_then(|r| in_root(r, &Path::new("/boot").join(&name))));
    out
}

/// The first candidate with a `modules.dep`.
pub fn find_modules(candidates: Vec<Modules>) -> Option<Modules> {
    candidates.into_iter().find(|m| m.dir.join("modules.dep").is_file())
}

/// `--modules-dir DIR` for a kernel of `release`.
pub fn modules_override(dir: &Path, release: Option<&str>) -> Result<Modules> {
    if let Some(r) = release.filter(|r| dir.join(r).join("modules.dep").is_file()) {
        return Ok(Modules { dir: dir.join(r), lib_modules: Some(dir.to_path_buf()) });
    }
    if dir.join("modules.dep").is_file() {
        return Ok(Modules { dir: dir.to_path_buf(), lib_modules: None });
    }
    Err(hinted(
        format!(
            "--modules-dir {}: no modules.dep in it{}",
            dir.display(),
            release.map(|r| format!(" or in {r}/")).unwrap_or_default()
        ),
        "pass a lib/modules directory holding the kernel's release, or the release's directory \
         (run depmod there if modules.dep is missing)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modules_at(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("modules.dep"), "").unwrap();
    }

    #[test]
    fn an_unpacked_package_is_found_before_the_host_and_the_root() {
        let t = tempfile::tempdir().unwrap();
        let (pkg, host, root) = (t.path().join("pkg"), t.path().join("host"), t.path().join("root"));
        let image = pkg.join("boot/vmlinuz-6.1.0-9-amd64");
        for dir in [&pkg, &host, &root] {
            modules_at(&dir.join("lib/modules/6.1.0-9-amd64"));
        }
        let host_mods = host.join("lib/modules");
        let found = |root: Option<&Path>| {
            find_modules(module_candidates(&image, "6.1.0-9-amd64", &host_mods, root)).unwrap()
        };
        assert_eq!(
            found(Some(&root)),
            Modules {
                dir: pkg.join("lib/modules/6.1.0-9-amd64"),
                lib_modules: Some(pkg.join("lib/modules"))
            }
        );
        std::fs::remove_dir_all(pkg.join("lib")).unwrap();
        assert_eq!(found(Some(&root)), Modules { dir: host_mods.join("6.1.0-9-amd64"), lib_modules: None });
        std::fs::remove_dir_all(&host_mods).unwrap();
        assert_eq!(found(Some(&root)).dir, root.join("lib/modules/6.1.0-9-amd64"));
        assert_eq!(find_modules(module_candidates(&image, "6.1.0-9-amd64", &host_mods, None)), None);
    }

    #[test]
    fn an_installed_image_uses_the_hosts_modules_as_they_are() {
        let t = tempfile::tempdir().unwrap();
        let image = t.path().join("boot/vmlinuz-6.1");
        let c = module_candidates(&image, "6.1", &t.path().join("lib/modules"), None);
        assert_eq!(c[0], Modules { dir: t.path().join("lib/modules/6.1"), lib_modules: None });
    }

    #[test]
    fn configs_next_to_the_image_then_boot_then_the_root() {
        let c = config_candidates(Path::new("/x/boot/vmlinuz-6.1"), "6.1", Path::new("/boot"), None);
        assert_eq!(c, [PathBuf::from("/x/boot/config-6.1"), PathBuf::from("/boot/config-6.1")]);
    }

    #[test]
    fn modules_dir_takes_a_lib_modules_or_a_release_directory() {
        let t = tempfile::tempdir().unwrap();
        modules_at(&t.path().join("6.1"));
        let parent = modules_override(t.path(), Some("6.1")).unwrap();
        assert_eq!(parent, Modules { dir: t.path().join("6.1"), lib_modules: Some(t.path().to_path_buf()) });
        let own = modules_override(&t.path().join("6.1"), Some("6.1")).unwrap();
        assert_eq!(own, Modules { dir: t.path().join("6.1"), lib_modules: None });
        let err = modules_override(t.path(), Some("7.0")).unwrap_err();
        assert!(format!("{err:#}").contains("no modules.dep in it or in 7.0/"), "{err:#}");
    }
}
