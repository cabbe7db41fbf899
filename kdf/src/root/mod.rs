//! `kdf run --root DIR`: another directory as the guest's `/`. Its share and
//! mode, the command's `PATH`, home, user name and shell from DIR's own user
//! database ([`passwd`]), and the checks that refuse a command DIR cannot run
//! before anything boots ([`command`]).

pub mod apt;
pub mod command;
pub mod default;
pub mod fetch;
pub mod passwd;

use std::path::{Path, PathBuf};

use crate::shares::view::View;
use crate::shares::ShareSpec;

/// How the guest may change `--root`'s directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read-only; never written (missing mount points go to a tmpfs overlay).
    Ro,
    /// Writable in the guest through a tmpfs overlay; DIR never changes.
    Overlay,
    /// Writes go to DIR (kdf-init creates missing mount points there).
    Rw,
}

/// The root share for `dir` (canonical) in `mode`. An `Ro` root that lacks
/// mount points is overlaid later ([`crate::shares::root_lacks`]).
pub fn share(dir: &Path, mode: Mode) -> ShareSpec {
    ShareSpec {
        guest: "/".into(),
        overlay: mode == Mode::Overlay,
        ..ShareSpec::same_path(dir.to_path_buf(), mode == Mode::Ro)
    }
}

/// Debian's default `PATH` (login.defs' ENV_SUPATH and ENV_PATH): a foreign
/// root's programs are where its distribution puts them, not where the
/// host's `PATH` says.
pub fn default_path(uid: u32) -> &'static str {
    if uid == 0 {
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    } else {
        "/usr/local/bin:/usr/bin:/bin"
    }
}

/// The user database of the guest's root (`/etc/passwd` inside it).
pub fn users(view: &View) -> Vec<passwd::Entry> {
    view.host_path(Path::new("/etc/passwd"))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|text| passwd::parse(&text))
        .unwrap_or_default()
}

/// What the command's environment takes from the root rather than the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub path: String,
    /// The entry's home, else `/`.
    pub home: PathBuf,
    /// The entry's name, if the root knows the user.
    pub user: Option<String>,
    /// The entry's shell if the root has it, else `/bin/sh`.
    pub shell: PathBuf,
}

/// The login of `uid` in a root whose users are `entries`; `exists` says
/// whether a guest path exists in the root.
pub fn login(entries: &[passwd::Entry], uid: u32, exists: impl Fn(&Path) -> bool) -> Login {
    let entry = passwd::by_uid(entries, uid);
    Login {
        path: default_path(uid).to_string(),
        home: entry.map(|e| e.home.clone()).filter(|h| h.is_absolute()).unwrap_or_else(|| "/".into()),
        user: entry.map(|e| e.name.clone()),
        shell: entry
            .map(|e| e.shell.clone())
            .filter(|s| s.is_absolute() && exists(s))
            .unwrap_or_else(|| "/bin/sh".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_roots_user_database_gives_home_name_and_an_existing_shell() {
        let entries = passwd::parse("root:x:0:0:root:/root:/bin/bash\nu:x:1000:1000::/home/u:/bin/ash\n");
        let has_ash = |p: &Path| p == Path::new("/bin/ash");
        let root = login(&entries, 0, has_ash);
        assert_eq!(root.path, default_path(0));
        assert_eq!((root.home.to_str(), root.user.as_deref()), (Some("/root"), Some("root")));
        assert_eq!(root.shell, PathBuf::from("/bin/sh"), "the root has no /bin/bash");
        let u = login(&entries, 1000, has_ash);
        assert_eq!((u.shell.to_str(), u.path.as_str()), (Some("/bin/ash"), "/usr/local/bin:/usr/bin:/bin"));
        let nobody = login(&entries, 4242, has_ash);
        assert_eq!((nobody.home.to_str(), nobody.user), (Some("/"), None));
    }

    #[test]
    fn the_root_share_follows_the_mode() {
        let dir = Path::new("/srv/r");
        let s = |m| {
            let s = share(dir, m);
            (s.guest.to_str().unwrap().to_string(), s.readonly, s.overlay)
        };
        assert_eq!(s(Mode::Ro), ("/".into(), true, false));
        assert_eq!(s(Mode::Overlay), ("/".into(), false, true));
        assert_eq!(s(Mode::Rw), ("/".into(), false, false));
    }
}
