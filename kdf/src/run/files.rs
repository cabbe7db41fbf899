//! The files a run's guest sees, resolved before boot: the root (the host's
//! `/`, or `--root DIR` in its mode, overlaid where it lacks mount points),
//! the working directory, the kernel's modules, `--module` files and the
//! user's shares, ordered and checked.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::cli::{RootModeArg, RunArgs};
use crate::errors::{hinted, usage};
use crate::kernel::Kernel;
use crate::module;
use crate::root::{self, Mode};
use crate::shares::view::View;
use crate::shares::{self, ShareSpec};
use crate::ui::say;

/// The most shares a run can have (QEMU's descriptors for them stay below
/// [`crate::child::FIRST_SPARE_FD`]).
pub const MAX_SHARES: usize = 64;

/// `--root DIR` and its mode, DIR canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub dir: PathBuf,
    pub mode: Mode,
}

/// `--root`, checked: an existing directory outside /proc and /sys.
pub fn root(args: &RunArgs) -> Result<Option<Root>> {
    let Some(dir) = &args.root else { return Ok(None) };
    let mode = match args.root_mode.unwrap_or(RootModeArg::Ro) {
        RootModeArg::Ro => Mode::Ro,
        RootModeArg::Overlay => Mode::Overlay,
        RootModeArg::Rw => Mode::Rw,
    };
    Ok(Some(Root { dir: shares::check_host_dir(dir, "--root")?, mode }))
}

/// The working directory, refused where it cannot be shared.
pub fn working_dir() -> Result<PathBuf> {
    let cwd = shares::check_host_dir(&shares::current_dir()?, "the working directory")?;
    if nix::unistd::access(&cwd, nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::X_OK).is_err() {
        return Err(hinted(
            format!("cannot share the working directory {}: it is not readable", cwd.display()),
            "cd to a directory you can read",
        ));
    }
    Ok(cwd)
}

/// Every share of the run, the root first. `modules`: the staged `--module`
/// files; `binds`: files kdf-init binds over on the root (the resolver file).
pub fn share_list(
    args: &RunArgs,
    kernel: &Kernel,
    cwd: &Path,
    modules: Option<&Path>,
    root: Option<&Root>,
    binds: &[&str],
    command_dirs: &[PathBuf],
) -> Result<Vec<ShareSpec>> {
    let root_share = match root {
        Some(r) => root::share(&r.dir, r.mode),
        None => ShareSpec::same_path("/".into(), true),
    }
    .kept_in_cache();
    let mut rest = Vec::new();
    if cwd != Path::new("/") {
        rest.push(ShareSpec::same_path(cwd.to_path_buf(), false));
    }
    if let Some(dir) = modules {
        rest.push(
            ShareSpec { guest: module::GUEST_DIR.into(), ..ShareSpec::same_path(dir.to_path_buf(), true) }
                .kept_in_cache(),
        );
    }
    rest.extend(kernel_modules(kernel, &root_share, root.is_some())?);
    for (paths, readonly, what) in [(&args.rw, false, "--rw"), (&args.ro, true, "--ro")] {
        for p in paths {
            rest.push(ShareSpec::same_path(shares::check_host_dir(p, what)?, readonly));
        }
    }
    for v in &args.virtiofs {
        let host = shares::check_host_dir(&v.host, "--virtiofs")?;
        let guest = if v.guest == v.host { host.clone() } else { v.guest.clone() };
        rest.push(ShareSpec { host, guest, ..v.clone() });
    }
    // After every other share: a PATH entry under a shared directory is there already.
    let mounted: Vec<ShareSpec> = std::iter::once(root_share.clone()).chain(rest.iter().cloned()).collect();
    rest.extend(shares::tmpfs_hidden(command_dirs, &mounted));
    if rest.len() >= MAX_SHARES {
        return Err(usage(format!(
            "too many shares ({}); kdf shares at most {}",
            rest.len() + 1,
            MAX_SHARES
        )));
    }
    let mut shares = shares::order(root_share, rest)?;
    if root.is_some_and(|r| r.mode == Mode::Ro) {
        let lacks = shares::root_lacks(&shares, binds);
        if !lacks.is_empty() {
            if args.verbose {
                let list: Vec<_> = lacks.iter().map(|p| p.display().to_string()).collect();
                say(&format!("--root lacks {}: kdf-init makes them in a tmpfs overlay", list.join(", ")));
            }
            shares[0].overlay = true;
        }
    }
    shares::check_mount_points(&shares)?;
    Ok(shares)
}

/// The kernel's own modules where the guest looks for them: a whole
/// `lib/modules` of the kernel's (a build's, an unpacked package's) on
/// `/lib/modules`; else its release's directory on `/lib/modules/<R>`
/// unless the guest's root already has it there (the host's installed
/// kernel with the host's root, a kernel found in `--root`).
fn kernel_modules(kernel: &Kernel, root_share: &ShareSpec, foreign: bool) -> Result<Option<ShareSpec>> {
    // On the host's root, shares sit at canonical host paths (/lib may be a
    // link to usr/lib); in --root the guest resolves the link itself.
    let lib_modules = || -> Result<PathBuf> {
        if foreign {
            Ok("/lib/modules".into())
        } else {
            shares::check_host_dir(Path::new("/lib/modules"), "/lib/modules")
        }
    };
    let share = |host: PathBuf, guest: PathBuf| {
        ShareSpec { guest, ..ShareSpec::same_path(host, true) }.kept_in_cache()
    };
    if let Some(modules) = &kernel.guest_modules {
        let host = shares::check_host_dir(modules, "the kernel's modules")?;
        return Ok(Some(share(host, lib_modules()?)));
    }
    let (Some(dir), Some(release)) = (&kernel.modules_dir, &kernel.release) else { return Ok(None) };
    let host = shares::check_host_dir(dir, "the kernel's modules")?;
    let roots = [root_share.clone()];
    let guest = Path::new("/lib/modules").join(release);
    let there = View::new(&roots).host_path(&guest).and_then(|p| p.canonicalize().ok());
    if there.as_deref() == Some(host.as_path()) {
        return Ok(None);
    }
    Ok(Some(share(host, lib_modules()?.join(release))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(modules_dir: Option<PathBuf>, guest_modules: Option<PathBuf>) -> Kernel {
        Kernel {
            image: "vmlinuz".into(),
            boot: "vmlinuz".into(),
            release: Some("6.1.0-9".into()),
            arch: crate::arch::Arch::X86_64,
            modules_dir,
            guest_modules,
            config: None,
        }
    }

    #[test]
    fn the_kernels_modules_are_shared_where_the_root_lacks_them() {
        let t = tempfile::tempdir().unwrap();
        let (pkg, root) = (t.path().join("pkg/lib/modules"), t.path().join("root"));
        std::fs::create_dir_all(pkg.join("6.1.0-9")).unwrap();
        std::fs::create_dir_all(root.join("usr/lib/modules/6.1.0-9")).unwrap();
        std::os::unix::fs::symlink("/usr/lib", root.join("lib")).unwrap();
        let root_share = root::share(&root, Mode::Ro);
        // A whole lib/modules of its own goes on /lib/modules.
        let s = kernel_modules(&kernel(Some(pkg.join("6.1.0-9")), Some(pkg.clone())), &root_share, true);
        let s = s.unwrap().unwrap();
        assert_eq!(
            (s.host.as_path(), s.guest.as_path(), s.readonly),
            (pkg.canonicalize().unwrap().as_path(), Path::new("/lib/modules"), true)
        );
        // The release's directory goes on /lib/modules/<R>...
        let s = kernel_modules(&kernel(Some(pkg.join("6.1.0-9")), None), &root_share, true).unwrap().unwrap();
        assert_eq!(s.guest, Path::new("/lib/modules/6.1.0-9"));
        // ...unless the root has it there already (found in --root).
        let in_root = root.join("usr/lib/modules/6.1.0-9");
        assert_eq!(kernel_modules(&kernel(Some(in_root), None), &root_share, true).unwrap(), None);
        assert_eq!(kernel_modules(&kernel(None, None), &root_share, true).unwrap(), None, "no modules");
    }
}
