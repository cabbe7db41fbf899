//! The command side of a run, resolved before boot: its argv (the command,
//! `-c SCRIPT` or a shell), environment and user; the file the guest will
//! execute; with `--root`, `PATH`, home, user name and shell from the root's
//! user database, and a command the root cannot run refused with the reason.

use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::arch::Arch;
use crate::cli::CommandArgs;
use crate::errors::hinted_status;
use crate::plan;
use crate::root;
use crate::shares::view::View;

/// What kdf-init executes.
#[derive(Debug)]
pub struct Command {
    pub argv: Vec<Vec<u8>>,
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
    /// argv[0], for messages.
    pub program: String,
    /// The file argv[0] names in the guest, found here ([`exec_path`]).
    pub exec_path: Option<Vec<u8>>,
}

/// The command's host-side view before the shares are known: the shell it
/// would run and the environment's directories (what a guest tmpfs may hide).
/// Not for `--root`, whose PATH and shell are the root's.
pub fn host_dirs(args: &CommandArgs, nix_bins: &[PathBuf]) -> Vec<PathBuf> {
    let env = plan::environment(|k| std::env::var_os(k), nix_bins, &args.env);
    let mut dirs = plan::path_dirs(&env);
    if args.argv.is_empty() && args.script.is_none() {
        let uid = if args.user { nix::unistd::getuid().as_raw() } else { 0 };
        let shell = args.shell.clone().or_else(|| plan::login_shell(uid).filter(|s| s.exists()));
        if let Some(shell) = shell {
            dirs.extend(shell.parent().map(Path::to_path_buf));
            dirs.extend(shell.canonicalize().ok().and_then(|s| s.parent().map(Path::to_path_buf)));
        }
    }
    dirs
}

/// `foreign`: the guest's root is `--root`'s (`view` shows the guest's files).
pub fn prepare(
    args: &CommandArgs,
    view: &View,
    foreign: Option<&Path>,
    cwd: &Path,
    nix_bins: &[PathBuf],
    arch: Arch,
) -> Result<Command> {
    let uid = if args.user { nix::unistd::getuid().as_raw() } else { 0 };
    let login = foreign
        .map(|_| root::login(&root::users(view), uid, |p| view.host_path(p).is_some_and(|h| h.exists())));
    let shell = match (&args.shell, &login) {
        (Some(shell), _) => shell.clone(),
        (None, Some(login)) => login.shell.clone(),
        (None, None) => plan::login_shell(uid).filter(|s| s.exists()).unwrap_or_else(|| "/bin/sh".into()),
    };
    let argv = plan::argv(&args.argv, args.script.as_deref(), &shell);
    let program = String::from_utf8_lossy(&argv[0]).into_owned();
    let host = |k: &str| std::env::var_os(k);
    let env = match &login {
        None => plan::environment(host, nix_bins, &args.env),
        Some(login) => plan::environment(
            |k| match k {
                "PATH" => Some(OsString::from(&login.path)),
                "HOME" => Some(login.home.clone().into_os_string()),
                "USER" => login.user.clone().map(OsString::from),
                _ => host(k),
            },
            nix_bins,
            &args.env,
        ),
    };
    let path_var = env.iter().find(|(k, _)| k == b"PATH").map(|(_, v)| v.as_slice());
    if let Some(dir) = foreign {
        root::command::check(&argv[0], path_var.unwrap_or_default(), cwd, view, arch).map_err(|refusal| {
            hinted_status(
                format!("cannot run {program} in --root {}: {}", dir.display(), refusal.reason()),
                refusal.hint(),
                refusal.status(),
            )
        })?;
    }
    // Without PATH the guest's libc searches its own default.
    let exec_path = path_var
        .and_then(|path_var| exec_path(&argv[0], path_var, cwd, view))
        .map(|p| p.into_os_string().into_encoded_bytes());
    Ok(Command { argv, env, program, exec_path })
}

/// The guest path execvp(3) will run for `argv0` at boot, when kdf can tell
/// for sure from `view`: the guest then skips the search, whose every miss
/// is a round trip to virtiofsd (~1 ms under TCG; a developer's `PATH` has
/// many). `None` for a name with a `/` (nothing to search), when no
/// directory has it, and when kdf cannot tell what the guest will see in a
/// directory before the hit (unreadable here, a symlink loop, a kernel
/// filesystem). The guest searches itself if that file will not execute.
pub fn exec_path(argv0: &[u8], path_var: &[u8], cwd: &Path, view: &View) -> Option<PathBuf> {
    if argv0.contains(&b'/') {
        return None;
    }
    for candidate in root::command::path_candidates(Path::new(OsStr::from_bytes(argv0)), path_var, cwd) {
        let resolved = view.resolve(&candidate)?;
        if ["/dev", "/proc", "/sys"].iter().any(|k| resolved.starts_with(k)) {
            return None;
        }
        // Nothing: a guest tmpfs, empty at boot.
        let Some(host) = view.host_path(&resolved) else { continue };
        match host.metadata() {
            Ok(m) if root::command::runnable(&m) => return Some(candidate),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {}
            Err(_) => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::shares::ShareSpec;

    fn file(root: &Path, path: &str, mode: u32) {
        let p = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// `PATH` searched in a root (a temporary directory) with `tools`, a
    /// second directory, shared at `/opt/tools`; commands run in `/work`.
    fn find(root: &Path, tools: &Path, argv0: &str, path_var: &str) -> Option<String> {
        let shares = [
            ShareSpec { guest: "/".into(), ..ShareSpec::same_path(root.to_path_buf(), true) },
            ShareSpec { guest: "/opt/tools".into(), ..ShareSpec::same_path(tools.to_path_buf(), true) },
        ];
        let found = exec_path(argv0.as_bytes(), path_var.as_bytes(), Path::new("/work"), &View::new(&shares));
        found.map(|p| p.display().to_string())
    }

    #[test]
    fn the_first_executable_file_on_path_as_the_guest_sees_it() {
        let (root, tools) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (r, t) = (root.path(), tools.path());
        file(r, "/usr/bin/cc", 0o755);
        file(r, "/usr/local/bin/cc", 0o644);
        file(r, "/tmp/bin/cc", 0o755);
        file(r, "/opt/tools/bin/cc", 0o755);
        file(t, "/bin/ld", 0o755);
        file(r, "/work/bin/cc", 0o755);
        std::os::unix::fs::symlink("usr/bin", r.join("bin")).unwrap();
        // Missing directories, a file that is not executable and a guest
        // tmpfs (empty at boot) are passed over, as execvp passes them.
        assert_eq!(
            find(r, t, "cc", "/nowhere:/usr/local/bin:/tmp/bin:/usr/bin").as_deref(),
            Some("/usr/bin/cc")
        );
        // Through a symlinked directory, named as PATH names it.
        assert_eq!(find(r, t, "cc", "/bin").as_deref(), Some("/bin/cc"));
        // A share's files, not the root's under it.
        assert_eq!(find(r, t, "ld", "/opt/tools/bin:/usr/bin").as_deref(), Some("/opt/tools/bin/ld"));
        assert_eq!(find(r, t, "cc", "/opt/tools/bin").as_deref(), None);
        // Relative entries and the empty one are the working directory's.
        assert_eq!(find(r, t, "cc", "bin").as_deref(), Some("/work/bin/cc"));
        assert_eq!(find(r, t, "cc", ":/usr/bin").as_deref(), Some("/usr/bin/cc"));
    }

    #[test]
    fn the_guest_searches_itself_when_kdf_cannot_tell() {
        let (root, tools) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (r, t) = (root.path(), tools.path());
        file(r, "/usr/bin/cc", 0o755);
        std::os::unix::fs::symlink("/loop", r.join("loop")).unwrap();
        // A path needs no search; nothing found is the guest's to report.
        assert_eq!(find(r, t, "./cc", "/usr/bin"), None);
        assert_eq!(find(r, t, "/usr/bin/cc", "/usr/bin"), None);
        assert_eq!(find(r, t, "nosuch", "/usr/bin"), None);
        // A symlink loop (ELOOP ends execvp's search) or a kernel
        // filesystem before the hit.
        assert_eq!(find(r, t, "cc", "/loop/bin:/usr/bin"), None);
        assert_eq!(find(r, t, "cc", "/proc/self:/usr/bin"), None);
    }
}
