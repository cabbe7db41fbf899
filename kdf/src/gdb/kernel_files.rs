//! The files gdb needs for a kernel: its vmlinux with debug info, the
//! kernel's own gdb scripts (`vmlinux-gdb.py`, built by `make scripts_gdb`),
//! the source tree and the build's `modules.order`; each missing one named
//! with its fix.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::errors::hinted;
use crate::kernel::vmlinux;
use crate::runs::Record;
use crate::ui::say;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelFiles {
    pub vmlinux: PathBuf,
    /// `vmlinux-gdb.py`, its real path (none for a distro's debug vmlinux).
    pub scripts: Option<PathBuf>,
    /// The kernel source tree (a build directory's `source` link), else none.
    pub source: Option<PathBuf>,
    /// The build's `modules.order`, where there is one.
    pub order: Option<PathBuf>,
}

/// The vmlinux: `--kernel` (a vmlinux, a build directory, or an image whose
/// vmlinux is found as `kdf run` finds it), else the run's.
pub fn vmlinux(kernel: Option<&Path>, record: Option<&Record>) -> Result<PathBuf> {
    let release = record.and_then(|r| r.release.as_deref());
    let (image, found) = match (kernel, record) {
        (Some(k), _) => {
            let looked = vmlinux::candidates(k, vmlinux::is_elf(k), release, Path::new(vmlinux::DEBUG_ROOT));
            (k.to_path_buf(), looked.into_iter().find(|p| p.is_file()))
        }
        (None, Some(r)) => (r.kernel.clone(), r.vmlinux.clone()),
        (None, None) => {
            return Err(hinted(
                "no kdf run has this gdb stub, so kdf gdb does not know its kernel",
                "pass the kernel's vmlinux (or build directory) with --kernel",
            ))
        }
    };
    let Some(path) = found else {
        let looked =
            vmlinux::candidates(&image, vmlinux::is_elf(&image), release, Path::new(vmlinux::DEBUG_ROOT));
        return Err(vmlinux::no_debug_info(&image, release, &looked));
    };
    if !vmlinux::has_debug_info(&path)? {
        return Err(vmlinux::no_debug_info(&image, release, &[path]));
    }
    Ok(path)
}

/// The files around `vmlinux`.
pub fn around(vmlinux: &Path) -> Result<KernelFiles> {
    let dir = vmlinux.parent().unwrap_or(Path::new("."));
    let build_dir = dir.join(".config").is_file();
    let scripts = dir.join("vmlinux-gdb.py");
    let scripts = match scripts.canonicalize() {
        Ok(real) => Some(real),
        Err(_) if build_dir => {
            return Err(hinted(
                format!(
                    "the kernel build {} has no vmlinux-gdb.py (the kernel's gdb scripts)",
                    dir.display()
                ),
                format!(
                    "build them: kdf kernel build -O {} scripts_gdb (they need CONFIG_GDB_SCRIPTS=y, \
                     which kdf's profiles set)",
                    dir.display()
                ),
            ))
        }
        Err(_) => {
            say(&format!(
                "{} has no vmlinux-gdb.py next to it: the kernel's lx- commands are missing \
                 (kdf's lx-symbols-runtime works)",
                vmlinux.display()
            ));
            None
        }
    };
    let order = dir.join("modules.order");
    Ok(KernelFiles {
        vmlinux: vmlinux.to_path_buf(),
        scripts,
        source: dir.join("source").canonicalize().ok(),
        order: (build_dir && order.is_file()).then_some(order),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_without_its_gdb_scripts_is_told_to_build_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".config"), "CONFIG_GDB_SCRIPTS=y\n").unwrap();
        std::fs::write(dir.path().join("vmlinux"), "").unwrap();
        let err = around(&dir.path().join("vmlinux")).unwrap_err();
        assert!(err.to_string().contains("has no vmlinux-gdb.py"), "{err}");
        assert!(crate::errors::hint_of(&err).unwrap().contains("scripts_gdb"));

        std::fs::write(dir.path().join("vmlinux-gdb.py"), "").unwrap();
        std::fs::write(dir.path().join("modules.order"), "").unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("source")).unwrap();
        let files = around(&dir.path().join("vmlinux")).unwrap();
        assert_eq!(files.scripts, Some(dir.path().canonicalize().unwrap().join("vmlinux-gdb.py")));
        assert_eq!(files.source, Some(PathBuf::from("/")));
        assert_eq!(files.order, Some(dir.path().join("modules.order")));
    }

    #[test]
    fn without_a_run_the_kernel_must_be_given() {
        let err = vmlinux(None, None).unwrap_err();
        assert!(crate::errors::hint_of(&err).unwrap().contains("--kernel"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = vmlinux(Some(dir.path()), None).unwrap_err();
        assert!(err.to_string().starts_with("no debug info for the kernel"), "{err}");
    }
}
