//! A kernel build directory (`O=` tree or in-tree build) as `--kernel DIR`: its
//! image, its release, and its modules installed into the cache with
//! `make modules_install` whenever they changed, so `modprobe` works in the guest.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};

use super::file::{read_config, read_head, Kernel};
use super::{boot, image};
use crate::arch::Arch;
use crate::errors::hinted;
use crate::{cache, kbuild};

pub fn resolve(dir: &Path) -> Result<Kernel> {
    let config = read_config(&dir.join(".config"))?.ok_or_else(|| {
        hinted(
            format!("{} is not a kernel build directory: it has no .config", dir.display()),
            "pass the directory given to `make O=...` (or `kdf kernel build -O`), or a kernel image",
        )
    })?;
    let release =
        std::fs::read_to_string(dir.join("include/config/kernel.release")).map(|r| r.trim().to_string()).ok();
    let vmlinux = dir.join("vmlinux");
    let bzimage = dir.join("arch/x86/boot/bzImage");
    let arm64_image = dir.join("arch/arm64/boot/Image");
    let arch = if config.builtin("CONFIG_ARM64") { Arch::Arm64 } else { Arch::X86_64 };
    // With CONFIG_PVH the unstripped vmlinux boots as it is: no need to read it.
    let (image, boot) = if arch == Arch::Arm64 {
        if !arm64_image.exists() {
            return Err(hinted(
                format!("{} has no built arm64 kernel (no arch/arm64/boot/Image)", dir.display()),
                format!("build it first: kdf kernel build --arch arm64 -O {}", dir.display()),
            ));
        }
        (arm64_image.clone(), arm64_image)
    } else if config.builtin("CONFIG_PVH") && vmlinux.exists() {
        (vmlinux.clone(), vmlinux)
    } else if bzimage.exists() {
        let head = read_head(&bzimage)?;
        let kind = image::kind(&head).context("arch/x86/boot/bzImage is not a bzImage")?;
        let boot = boot::bootable(&bzimage, &head, kind)?;
        (bzimage, boot)
    } else {
        return Err(hinted(
            format!("{} has no built kernel (no vmlinux or arch/x86/boot/bzImage)", dir.display()),
            format!("build it first: kdf kernel build -O {}", dir.display()),
        ));
    };
    let mut kernel = Kernel {
        image,
        boot,
        release: release.clone(),
        arch,
        modules_dir: None,
        guest_modules: None,
        config: Some(config.clone()),
    };
    if config.builtin("CONFIG_MODULES") && dir.join("modules.order").exists() {
        let release = release.context("the build directory has no include/config/kernel.release")?;
        let installed = install_modules(dir, &release, arch)?;
        kernel.modules_dir = Some(installed.join(&release));
        kernel.guest_modules = Some(installed);
    }
    Ok(kernel)
}

/// The `.ko` files `modules.order` names (it lists `.o` since 6.2, `.ko` before).
fn module_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let order = std::fs::read_to_string(dir.join("modules.order"))
        .with_context(|| format!("failed to read {}", dir.join("modules.order").display()))?;
    Ok(order
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| dir.join(l.trim().trim_end_matches(".o").trim_end_matches(".ko")).with_extension("ko"))
        .collect())
}

/// What the installed modules depend on: the release and each module's
/// [`cache::fingerprint`].
fn stamp(dir: &Path, release: &str) -> Result<String> {
    let mut parts = vec![release.to_string()];
    for ko in module_files(dir)? {
        let listed = || format!("module {} is listed in modules.order but missing", ko.display());
        parts.push(cache::fingerprint(&ko).with_context(listed)?);
    }
    Ok(cache::digest(parts))
}

/// Installs the modules under `<cache>/modules/<dir hash>/lib/modules` unless
/// the installed copy is current; returns that `lib/modules` directory.
fn install_modules(dir: &Path, release: &str, arch: Arch) -> Result<PathBuf> {
    let canonical = dir.canonicalize().with_context(|| format!("failed to resolve {}", dir.display()))?;
    let base = cache::subdir("modules")?.join(cache::digest([canonical.as_os_str().as_encoded_bytes()]));
    std::fs::create_dir_all(&base).with_context(|| format!("failed to create {}", base.display()))?;
    let lock =
        File::create(base.join("lock")).with_context(|| format!("failed to lock {}", base.display()))?;
    // Parallel runs of the same build directory install once, one at a time.
    let _lock = Flock::lock(lock, FlockArg::LockExclusive).map_err(|(_, e)| e)?;
    let want = stamp(dir, release)?;
    let stamp_file = base.join("stamp");
    let installed = base.join("lib/modules");
    if std::fs::read_to_string(&stamp_file).ok().as_deref() == Some(want.as_str()) && installed.is_dir() {
        return Ok(installed);
    }
    let staging = base.join("staging");
    let _ = std::fs::remove_dir_all(&staging);
    let mut make = Command::new("make");
    make.arg("-C").arg(dir).arg("-s");
    // Kbuild does not remember ARCH or CROSS_COMPILE: without ARCH an arm64
    // build's config is taken for the host's and make wants to reconfigure
    // it; without CROSS_COMPILE, INSTALL_MOD_STRIP runs the host's strip,
    // which cannot read an arm64 module.
    make.args(kbuild::arch::of_build_dir(dir, arch).make_vars());
    make.arg(format!("INSTALL_MOD_PATH={}", staging.display())).arg("INSTALL_MOD_STRIP=1");
    // The kernel's default is /sbin/depmod, absent on NixOS: use the one on PATH.
    if let Some(depmod) = crate::tools::depmod() {
        make.arg(format!("DEPMOD={}", depmod.display()));
    }
    let out = make
        .arg("modules_install")
        .output()
        .context("failed to run make modules_install (is make installed?)")?;
    if !out.status.success() {
        bail!(
            "make -C {} modules_install failed:\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    let _ = std::fs::remove_dir_all(base.join("lib"));
    std::fs::rename(staging.join("lib"), base.join("lib"))
        .with_context(|| format!("failed to move the installed modules into {}", base.display()))?;
    let _ = std::fs::remove_dir_all(&staging);
    cache::write_atomic(&stamp_file, want.as_bytes())?;
    Ok(installed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_files_come_from_modules_order_in_either_spelling() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("modules.order"),
            "fs/fuse/virtiofs.o\nsamples/rust/rust_minimal.ko\n\n",
        )
        .unwrap();
        let files = module_files(dir.path()).unwrap();
        assert_eq!(
            files,
            [dir.path().join("fs/fuse/virtiofs.ko"), dir.path().join("samples/rust/rust_minimal.ko")]
        );
    }

    #[test]
    fn stamp_changes_when_a_module_changes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("modules.order"), "a.o\n").unwrap();
        std::fs::write(dir.path().join("a.ko"), "one").unwrap();
        let first = stamp(dir.path(), "6.9").unwrap();
        assert_eq!(first, stamp(dir.path(), "6.9").unwrap());
        std::fs::write(dir.path().join("a.ko"), "longer").unwrap();
        assert_ne!(first, stamp(dir.path(), "6.9").unwrap());
    }

    #[test]
    fn a_directory_without_config_is_not_a_build_directory() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("not a kernel build directory"));
    }
}
