//! The host directories a guest sees: the root (read-only), the working
//! directory (read-write), `--rw`/`--ro`/`--virtiofs` shares, a kernel's
//! modules and the PATH and shell directories a guest tmpfs would hide,
//! checked, ordered parent-first, and turned into guest mounts.

use std::path::{Component, Path, PathBuf};

use anyhow::Result;

pub use self::spec::{parse_virtiofs, ShareSpec};
use self::view::{Place, View};
use crate::errors::{hinted, usage, usage_hinted};
use crate::vm::virtiofsd::CacheMode;
use crate::vm::Transport;

pub mod spec;
pub mod view;

/// Kernel filesystems cannot be shared: their contents are the host kernel's.
fn is_kernel_fs(path: &Path) -> bool {
    path.starts_with("/proc") || path.starts_with("/sys")
}

/// Resolves a host path: absolute, symlinks followed, must be a directory.
pub fn check_host_dir(path: &Path, what: &str) -> Result<PathBuf> {
    let canonical = path.canonicalize().map_err(|e| {
        hinted(format!("cannot share {what} {}: {e}", path.display()), "check the path exists")
    })?;
    if !canonical.is_dir() {
        return Err(usage(format!("cannot share {what} {}: not a directory", path.display())));
    }
    if is_kernel_fs(&canonical) {
        return Err(hinted(
            format!("cannot share {what} {}: it is in a kernel filesystem", canonical.display()),
            "the guest has its own /proc and /sys; run kdf from a normal directory",
        ));
    }
    Ok(canonical)
}

/// The current directory, with the error people hit named (it was deleted).
pub fn current_dir() -> Result<PathBuf> {
    std::env::current_dir().map_err(|e| {
        hinted(
            format!("cannot use the current directory: {e}"),
            "it may have been deleted; cd to an existing directory",
        )
    })
}

/// The number of normal components: parents sort before their children.
fn depth(p: &Path) -> usize {
    p.components().filter(|c| matches!(c, Component::Normal(_))).count()
}

/// The root share first, then the rest ordered parent-first (stable), one
/// share per guest path, a later one replacing an earlier: the caller puts
/// kdf's implicit shares (the working directory) first, so `--ro .` makes the
/// working directory read-only. A share of `/` at `/` sets the root share's
/// mode instead of stacking a second root over the guest's own `/tmp`; with
/// `--root` the root is another directory, whose mode `--root-mode` sets.
pub fn order(mut root: ShareSpec, rest: Vec<ShareSpec>) -> Result<Vec<ShareSpec>> {
    let mut kept: Vec<ShareSpec> = Vec::new();
    for share in rest {
        if share.guest == Path::new("/") {
            if root.host != Path::new("/") {
                return Err(usage_hinted(
                    format!("cannot share {} as the guest's /: --root {} is the guest's /", share.host.display(), root.host.display()),
                    "set how the guest may change it with --root-mode ro|overlay|rw, or share it elsewhere (dst=/host)",
                ));
            }
            if share.host != Path::new("/") || share.overlay {
                return Err(usage(format!(
                    "cannot share {} as the guest's /: the guest's root is the host's / (read-only, or \
                     writable with --rw /)",
                    share.host.display()
                )));
            }
            (root.readonly, root.cache) = (share.readonly, share.cache);
            continue;
        }
        match kept.iter_mut().find(|k| k.guest == share.guest) {
            Some(k) => *k = share,
            None => kept.push(share),
        }
    }
    kept.sort_by_key(|s| depth(&s.guest));
    let mut out = vec![root];
    out.extend(kept);
    Ok(out)
}

/// Where kdf-init would have to create `path` (with mkdir, from its nearest
/// existing ancestor) in the guest `view` shows: that ancestor and the share
/// it lies on (`None`: a guest tmpfs). `None` when `path` exists.
fn creation_point<'a>(path: &Path, view: &View<'a>) -> Option<(PathBuf, Option<&'a ShareSpec>)> {
    let parent = path.ancestors().find(|a| view.is_dir(a))?;
    if parent == path {
        return None;
    }
    let on = match view.place(&view.resolve(parent)?)? {
        Place::Share { share, .. } => Some(share),
        Place::Tmpfs(_) => None,
    };
    Some((parent.to_path_buf(), on))
}

/// Read-only shares, each at its own path, of the host directories in `dirs`
/// (PATH's, the shell's) that the guest would otherwise look for on one of
/// its own tmpfs mounts ([`kdf_proto::GUEST_TMPFS`]), where they do not
/// exist: NixOS keeps root's login shell and the system PATH under
/// /run/current-system and /run/wrappers. Each is resolved on the host
/// (/run/current-system is a symlink into /nix/store); directories the host
/// lacks, relative entries, kernel filesystems and the tmpfs mount points
/// themselves (`/tmp` in PATH) are left out.
pub fn tmpfs_hidden(dirs: &[PathBuf], shares: &[ShareSpec]) -> Vec<ShareSpec> {
    let found = dirs
        .iter()
        .filter_map(|dir| {
            let guest = lexical(dir)?;
            let host = guest.canonicalize().ok().filter(|h| h.is_dir() && !is_kernel_fs(h))?;
            Some(ShareSpec { host, ..ShareSpec::same_path(guest, true) })
        })
        .collect();
    uncovered(found, shares)
}

/// An absolute path without `.` components or trailing slashes; none for a
/// relative one or one with `..` (which only the host could resolve).
fn lexical(path: &Path) -> Option<PathBuf> {
    let ok = path.is_absolute() && !path.components().any(|c| c == Component::ParentDir);
    ok.then(|| path.components().collect())
}

/// The shares of `found` whose guest path lies on a guest tmpfs once
/// `shares` and the earlier ones of `found` are mounted: parents first, one
/// per path, none inside another one (the outer share shows it already).
fn uncovered(mut found: Vec<ShareSpec>, shares: &[ShareSpec]) -> Vec<ShareSpec> {
    found.sort_by_key(|s| depth(&s.guest));
    let mut mounted = shares.to_vec();
    let mut out = Vec::new();
    for share in found {
        // A mount point itself (/tmp in PATH) stays the guest's writable tmpfs.
        let mount_point = kdf_proto::GUEST_TMPFS.iter().any(|t| share.guest == Path::new(t));
        if !mount_point && matches!(View::new(&mounted).place(&share.guest), Some(Place::Tmpfs(_))) {
            mounted.push(share.clone());
            out.push(share);
        }
    }
    out
}

/// Refuses, before anything boots, a share whose mount point kdf-init would
/// have to create on a read-only share (it creates missing ones with mkdir;
/// an overlaid root takes them in its tmpfs layer).
pub fn check_mount_points(shares: &[ShareSpec]) -> Result<()> {
    for (i, share) in shares.iter().enumerate().skip(1) {
        let view = View::new(&shares[..i]);
        let Some((parent, Some(s))) = creation_point(&share.guest, &view) else { continue };
        if s.readonly && !s.overlay {
            return Err(usage_hinted(
                format!(
                    "cannot mount {} in the guest: {} does not exist there and {} is on a read-only share ({})",
                    share.guest.display(),
                    share.guest.display(),
                    parent.display(),
                    s.host.display()
                ),
                "use a dst under /tmp, /run, the cwd or another writable share",
            ));
        }
    }
    Ok(())
}

/// What the root share (`shares[0]`) lacks that kdf-init needs on it: the
/// guest's mount points ([`kdf_proto::ROOT_MOUNT_POINTS`]), the shares' mount
/// points that would be made on it, and `files` it binds over after the
/// shares (the resolver file). A `--root` lacking any of them is overlaid.
pub fn root_lacks(shares: &[ShareSpec], files: &[&str]) -> Vec<PathBuf> {
    let Some(root) = shares.first() else { return Vec::new() };
    let on_root = |on: Option<&ShareSpec>| on.is_some_and(|s| std::ptr::eq(s, root));
    let mut out = Vec::new();
    let root_only = View::bare(root);
    for path in kdf_proto::ROOT_MOUNT_POINTS.iter().map(Path::new) {
        if !root_only.is_dir(path) {
            out.push(path.to_path_buf());
        }
    }
    for i in 1..shares.len() {
        let view = View::new(&shares[..i]);
        if creation_point(&shares[i].guest, &view).is_some_and(|(_, on)| on_root(on)) {
            out.push(shares[i].guest.clone());
        }
    }
    let all = View::new(shares);
    for file in files.iter().map(Path::new) {
        let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else { continue };
        let Some(path) = all.resolve(dir).map(|d| d.join(name)) else { continue };
        let lacking = match all.place(&path) {
            Some(Place::Share { share, host }) => on_root(Some(share)) && host.symlink_metadata().is_err(),
            _ => false,
        };
        if lacking {
            out.push(file.to_path_buf());
        }
    }
    out
}

/// Guest mounts for the shares, tags `kdf0`, `kdf1`, ... in order.
pub fn to_proto(shares: &[ShareSpec], transport: Transport) -> Vec<kdf_proto::Share> {
    use std::os::unix::ffi::OsStrExt;
    shares
        .iter()
        .enumerate()
        .map(|(i, s)| kdf_proto::Share {
            tag: format!("kdf{i}"),
            fstype: match transport {
                Transport::Virtiofs => "virtiofs".into(),
                Transport::NineP => "9p".into(),
            },
            data: match transport {
                Transport::Virtiofs => String::new(),
                Transport::NineP => format!(
                    "trans=virtio,version=9p2000.L,msize=262144,cache={}",
                    match s.cache {
                        CacheMode::Never => "none",
                        CacheMode::Always => "loose",
                        CacheMode::Auto | CacheMode::Metadata => "mmap",
                    }
                ),
            },
            target: s.guest.as_os_str().as_bytes().to_vec(),
            readonly: s.readonly,
            overlay: s.overlay,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_ordered_parent_first_after_the_root() {
        let root = ShareSpec::same_path("/".into(), true);
        let out = order(
            root.clone(),
            vec![
                ShareSpec::same_path("/home/u/src".into(), false),
                ShareSpec::same_path("/home".into(), true),
                ShareSpec::same_path("/lib/modules".into(), true),
            ],
        )
        .unwrap();
        let guests: Vec<_> = out.iter().map(|s| s.guest.to_str().unwrap()).collect();
        assert_eq!(guests, ["/", "/home", "/lib/modules", "/home/u/src"]);
    }

    #[test]
    fn an_explicit_share_of_the_cwd_replaces_the_implicit_one() {
        let root = ShareSpec::same_path("/".into(), true);
        let out = order(
            root,
            vec![ShareSpec::same_path("/w".into(), false), ShareSpec::same_path("/w".into(), true)],
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert!(out[1].readonly, "--ro . wins over the implicit read-write cwd");
    }

    #[test]
    fn a_share_of_the_root_sets_the_roots_mode_instead_of_stacking() {
        let root = ShareSpec::same_path("/".into(), true);
        let out = order(root.clone(), vec![ShareSpec::same_path("/".into(), false)]).unwrap();
        assert_eq!(out.len(), 1);
        assert!(!out[0].readonly);
        let other = ShareSpec { host: "/srv".into(), ..ShareSpec::same_path("/".into(), false) };
        assert!(order(root, vec![other]).is_err());
    }

    fn share(host: &Path, guest: &str, readonly: bool) -> ShareSpec {
        ShareSpec { guest: guest.into(), ..ShareSpec::same_path(host.to_path_buf(), readonly) }
    }

    #[test]
    fn a_mount_point_to_create_on_a_read_only_share_is_refused() {
        let host = tempfile::tempdir().unwrap();
        std::fs::create_dir(host.path().join("exists")).unwrap();
        let h = host.path();
        let root = ShareSpec::same_path("/".into(), true);
        let ro_host = share(h, "/mnt", true);
        let ok = |guest: &str| {
            let mut all = vec![root.clone(), ro_host.clone(), share(Path::new("/"), guest, false)];
            all.sort_by_key(|s| depth(&s.guest));
            check_mount_points(&all)
        };
        assert!(ok("/tmp/new/deep").is_ok(), "created on the guest's tmpfs");
        assert!(ok("/run/x").is_ok());
        assert!(ok("/mnt/exists").is_ok(), "an existing mount point needs no mkdir");
        let err = ok("/mnt/missing").unwrap_err();
        assert!(crate::errors::is_usage(&err), "{err:#}");
        assert!(crate::errors::hint_of(&err).unwrap().contains("under /tmp"), "{err:#}");
        assert!(ok("/nonexistent-kdf-dir/x").is_err(), "the root share is read-only");
        let mut writable =
            vec![root.clone(), share(h, "/mnt", false), share(Path::new("/"), "/mnt/missing", false)];
        writable.sort_by_key(|s| depth(&s.guest));
        assert!(check_mount_points(&writable).is_ok(), "mkdir works on a writable share");
    }

    #[test]
    fn only_directories_a_guest_tmpfs_would_hide_are_shared_parents_first() {
        let root = ShareSpec::same_path("/".into(), true);
        let cwd = ShareSpec::same_path("/run/user/1000/src".into(), false);
        let ro = |p: &str| ShareSpec::same_path(p.into(), true);
        let found = vec![
            ro("/run/current-system/sw/bin"),
            ro("/usr/bin"),
            ro("/run/wrappers/bin"),
            ro("/run/current-system"),
            ro("/run/wrappers/bin"),
            ro("/run/user/1000/src/bin"),
            ro("/tmp"),
            ro("/dev/shm/x"),
        ];
        let out = uncovered(found, &[root, cwd]);
        let guests: Vec<_> = out.iter().map(|s| s.guest.to_str().unwrap()).collect();
        assert_eq!(guests, ["/run/current-system", "/run/wrappers/bin", "/dev/shm/x"]);
        assert!(out.iter().all(|s| s.readonly && !s.overlay));
    }

    #[test]
    fn hidden_directories_are_resolved_on_the_host() {
        let store = tempfile::tempdir().unwrap();
        std::fs::create_dir(store.path().join("bin")).unwrap();
        let real = store.path().canonicalize().unwrap().join("bin");
        // /dev/shm stands in for /run: a guest tmpfs path any user can write here.
        let link = tempfile::Builder::new().prefix("kdf-unit-").tempdir_in("/dev/shm").unwrap();
        std::os::unix::fs::symlink(store.path(), link.path().join("current")).unwrap();
        let dirs = [
            link.path().join("current/./bin/"),
            link.path().join("missing"),
            PathBuf::from("relative/bin"),
            link.path().join("current/../current/bin"),
        ];
        let out = tmpfs_hidden(&dirs, &[ShareSpec::same_path("/".into(), true)]);
        assert_eq!(
            out,
            [ShareSpec { host: real, ..ShareSpec::same_path(link.path().join("current/bin"), true) }]
        );
    }

    #[test]
    fn with_root_a_share_of_slash_is_refused_with_the_mode_flag() {
        let root = ShareSpec::same_path("/srv/root".into(), true);
        let err = order(root, vec![ShareSpec::same_path("/".into(), false)]).unwrap_err();
        assert!(crate::errors::is_usage(&err));
        assert!(crate::errors::hint_of(&err).unwrap().contains("--root-mode"), "{err:#}");
    }

    #[test]
    fn what_a_minimal_root_lacks_is_listed_and_a_full_one_lacks_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::create_dir_all(r.join("proc")).unwrap();
        let cwd = tempfile::tempdir().unwrap();
        let shares = vec![
            share(r, "/", true),
            share(cwd.path(), "/work/src", false),
            share(cwd.path(), "/tmp/w", false),
            share(cwd.path(), "/work/src/sub/dir", true),
        ];
        let lacks = root_lacks(&shares, &["/etc/resolv.conf"]);
        let lacks: Vec<_> = lacks.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            lacks,
            ["/dev", "/sys", "/tmp", "/run", "/var/tmp", "/work/src", "/etc/resolv.conf"],
            "/tmp/w is made on the guest's tmpfs, sub/dir on the writable cwd share"
        );
        for d in ["dev", "sys", "tmp", "run", "var/tmp", "work/src"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        // A link counts: kdf-init writes where it points or binds over it.
        std::os::unix::fs::symlink("../run/resolv.conf", r.join("etc/resolv.conf")).unwrap();
        assert!(root_lacks(&shares, &["/etc/resolv.conf"]).is_empty());
    }

    #[test]
    fn an_overlaid_root_takes_mount_points_a_read_only_one_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let mut shares = vec![share(dir.path(), "/", true), share(Path::new("/"), "/x/y", false)];
        assert!(check_mount_points(&shares).is_err());
        shares[0].overlay = true;
        assert!(check_mount_points(&shares).is_ok());
    }

    #[test]
    fn proto_shares_get_tags_and_transport_options() {
        let shares = vec![ShareSpec::same_path("/".into(), true), ShareSpec::same_path("/w".into(), false)];
        let v = to_proto(&shares, Transport::Virtiofs);
        assert_eq!((v[0].tag.as_str(), v[0].fstype.as_str(), v[0].readonly), ("kdf0", "virtiofs", true));
        assert_eq!(v[1].target, b"/w");
        let p = to_proto(&shares, Transport::NineP);
        assert_eq!(p[1].fstype, "9p");
        assert!(p[1].data.starts_with("trans=virtio,version=9p2000.L"));
    }

    #[test]
    fn kernel_filesystems_and_missing_paths_are_refused() {
        assert!(check_host_dir(Path::new("/proc/self"), "the working directory").is_err());
        assert!(check_host_dir(Path::new("/nonexistent/kdf"), "--rw").is_err());
        assert_eq!(check_host_dir(Path::new("/"), "--ro").unwrap(), PathBuf::from("/"));
    }
}
