//! The guest's file tree as the host can see it before boot: which share (or
//! guest tmpfs) holds a guest path, with symlinks resolved the way the guest
//! resolves them (an absolute link starts again from the guest's `/`, which
//! for `--root DIR` is DIR, not the host's `/`).

use std::path::{Component, Path, PathBuf};

use super::spec::ShareSpec;

/// The most symlinks one lookup follows (the kernel's limit).
const MAX_LINKS: usize = 40;

/// What holds a guest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place<'a> {
    /// One of the guest's own tmpfs ([`kdf_proto::GUEST_TMPFS`]): empty at boot.
    Tmpfs(&'static str),
    /// A share, and the host path behind the guest path.
    Share { share: &'a ShareSpec, host: PathBuf },
}

/// The guest's mounts: each share at the guest path its target resolves to
/// through the shares mounted before it (the kernel follows symlinks in a
/// mount target).
#[derive(Debug)]
pub struct View<'a> {
    mounts: Vec<(PathBuf, &'a ShareSpec)>,
    /// Whether the guest's own tmpfs are mounted (not yet on a bare root).
    tmpfs: bool,
}

fn depth(p: &Path) -> usize {
    p.components().filter(|c| matches!(c, Component::Normal(_))).count()
}

impl<'a> View<'a> {
    /// The guest with `shares` mounted in order (`shares[0]`: the root).
    pub fn new(shares: &'a [ShareSpec]) -> View<'a> {
        let mut view = View { mounts: Vec::new(), tmpfs: true };
        for share in shares {
            let target = view.resolve(&share.guest).unwrap_or_else(|| share.guest.clone());
            view.mounts.push((target, share));
        }
        view
    }

    /// The root share alone, before kdf-init mounts anything on it.
    pub fn bare(root: &'a ShareSpec) -> View<'a> {
        View { mounts: vec![(PathBuf::from("/"), root)], tmpfs: false }
    }

    /// What holds `path`, a guest path without symlinks: the deepest mount
    /// containing it (a later one at the same depth, which covers it).
    pub fn place(&self, path: &Path) -> Option<Place<'a>> {
        let share = self.mounts.iter().filter(|(g, _)| path.starts_with(g)).max_by_key(|(g, _)| depth(g));
        let tmpfs = kdf_proto::GUEST_TMPFS
            .iter()
            .filter(|t| self.tmpfs && path.starts_with(t))
            .max_by_key(|t| depth(Path::new(t)));
        match (share, tmpfs) {
            (Some((g, _)), Some(t)) if depth(Path::new(t)) > depth(g) => Some(Place::Tmpfs(t)),
            (None, Some(t)) => Some(Place::Tmpfs(t)),
            (Some((g, share)), _) => {
                Some(Place::Share { share, host: share.host.join(path.strip_prefix(g).unwrap_or(path)) })
            }
            (None, None) => None,
        }
    }

    /// `path` with every symlink resolved as the guest would, `.` and `..`
    /// applied; components past a missing one are taken as they are. `None`
    /// after too many links.
    pub fn resolve(&self, path: &Path) -> Option<PathBuf> {
        let mut done = PathBuf::from("/");
        let mut todo: Vec<std::ffi::OsString> = Vec::new();
        push_components(&mut todo, path);
        let mut links = 0;
        while let Some(name) = todo.pop() {
            if name == ".." {
                done.pop();
                continue;
            }
            let next = done.join(&name);
            let target = match self.place(&next) {
                Some(Place::Share { host, .. }) => std::fs::read_link(host).ok(),
                _ => None,
            };
            match target {
                Some(target) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return None;
                    }
                    if target.is_absolute() {
                        done = PathBuf::from("/");
                    }
                    push_components(&mut todo, &target);
                }
                None => done = next,
            }
        }
        Some(done)
    }

    /// The host file behind a guest path, symlinks resolved; `None` on a
    /// guest tmpfs (nothing is there before boot) or through too many links.
    pub fn host_path(&self, path: &Path) -> Option<PathBuf> {
        match self.place(&self.resolve(path)?)? {
            Place::Share { host, .. } => Some(host),
            Place::Tmpfs(_) => None,
        }
    }

    /// Whether `path` is a directory in the guest at boot (on a tmpfs: only
    /// its mount point).
    pub fn is_dir(&self, path: &Path) -> bool {
        let Some(resolved) = self.resolve(path) else { return false };
        match self.place(&resolved) {
            Some(Place::Share { host, .. }) => host.is_dir(),
            Some(Place::Tmpfs(t)) => resolved == Path::new(t),
            None => false,
        }
    }
}

/// Pushes `path`'s normal and `..` components so that the first pops first.
fn push_components(todo: &mut Vec<std::ffi::OsString>, path: &Path) {
    let names: Vec<_> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    todo.extend(names.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn share(host: &Path, guest: &str, readonly: bool) -> ShareSpec {
        ShareSpec { guest: guest.into(), ..ShareSpec::same_path(host.to_path_buf(), readonly) }
    }

    /// A root directory with an absolute and a relative link, merged-/usr style.
    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::fs::create_dir_all(r.join("usr/lib/modules")).unwrap();
        std::fs::write(r.join("usr/bin/busybox"), "").unwrap();
        symlink("usr/bin", r.join("bin")).unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();
        symlink("/bin/busybox", r.join("usr/bin/sh")).unwrap();
        symlink("../../etc/loop", r.join("usr/bin/loop")).unwrap();
        std::fs::create_dir(r.join("etc")).unwrap();
        symlink("/usr/bin/loop", r.join("etc/loop")).unwrap();
        dir
    }

    #[test]
    fn absolute_links_resolve_inside_the_root_not_on_the_host() {
        let dir = root();
        let shares = [share(dir.path(), "/", true)];
        let view = View::new(&shares);
        assert_eq!(view.resolve(Path::new("/bin/sh")), Some("/usr/bin/busybox".into()));
        assert_eq!(view.host_path(Path::new("/bin/sh")), Some(dir.path().join("usr/bin/busybox")));
        assert_eq!(view.resolve(Path::new("/bin/../lib/modules")), Some("/usr/lib/modules".into()));
        assert!(view.is_dir(Path::new("/lib/modules")));
        assert!(!view.is_dir(Path::new("/lib/modules/6.1")));
        assert_eq!(view.resolve(Path::new("/bin/missing/x")), Some("/usr/bin/missing/x".into()));
        assert_eq!(view.resolve(Path::new("/etc/loop")), None, "a link loop ends");
    }

    #[test]
    fn later_shares_and_the_guests_tmpfs_cover_the_root() {
        let dir = root();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("f"), "").unwrap();
        // Mounted at /lib/modules/6.1, which the kernel reaches through /lib -> usr/lib.
        let shares = [share(dir.path(), "/", true), share(other.path(), "/lib/modules/6.1", true)];
        let view = View::new(&shares);
        assert_eq!(view.host_path(Path::new("/usr/lib/modules/6.1/f")), Some(other.path().join("f")));
        assert_eq!(view.host_path(Path::new("/lib/modules/6.1/f")), Some(other.path().join("f")));
        assert!(matches!(view.place(Path::new("/tmp/x")), Some(Place::Tmpfs("/tmp"))));
        assert_eq!(view.host_path(Path::new("/tmp/x")), None);
        assert!(view.is_dir(Path::new("/run")) && !view.is_dir(Path::new("/run/x")));
        assert!(!View::bare(&shares[0]).is_dir(Path::new("/run")), "before boot the root has no /run");
        let cwd = [share(dir.path(), "/", true), share(other.path(), "/tmp/w", false)];
        let view = View::new(&cwd);
        assert_eq!(view.host_path(Path::new("/tmp/w/f")), Some(other.path().join("f")), "a share under /tmp");
    }
}
