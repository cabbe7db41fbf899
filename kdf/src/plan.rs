//! The command side of a run or an attach session, turned into the [`Exec`]
//! kdf-init executes: argv (the command, a `-c` script or an interactive
//! shell), environment, working directory, user, terminal.

use std::ffi::{OsStr, OsString};
use std::io::IsTerminal;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use kdf_proto::{Exec, User, Winsize};

use crate::cli::{CommandArgs, TtyMode};

/// What `args` ask the guest to run in `cwd` (the command's default
/// directory; `--chdir` is relative to it), with `path_prefix` (`--nix`)
/// before the inherited `PATH`. Reads the host: the user, the login shell,
/// whether stdin and stdout are terminals and their size.
pub fn exec(args: &CommandArgs, cwd: &Path, path_prefix: &[PathBuf]) -> Exec {
    let cwd = match &args.chdir {
        Some(dir) => cwd.join(dir),
        None => cwd.to_path_buf(),
    };
    Exec {
        argv: argv(&args.argv, args.script.as_deref(), &shell(args)),
        // An attach session's guest has changed since boot: it searches.
        program: None,
        env: environment(|k| std::env::var_os(k), path_prefix, &args.env),
        cwd: cwd.into_os_string().into_vec(),
        user: user(args.user),
        tty: tty_size(args.tty),
        stdin: !args.no_stdin,
    }
}

/// The invoking user, for `--user` (root otherwise).
pub fn user(as_user: bool) -> Option<User> {
    as_user.then(|| User {
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        groups: nix::unistd::getgroups().unwrap_or_default().iter().map(|g| g.as_raw()).collect(),
    })
}

/// `--shell`, else the login shell of whoever the command runs as, else `/bin/sh`.
fn shell(args: &CommandArgs) -> PathBuf {
    args.shell.clone().unwrap_or_else(|| {
        let uid = if args.user { nix::unistd::getuid().as_raw() } else { 0 };
        login_shell(uid).filter(|s| s.exists()).unwrap_or_else(|| "/bin/sh".into())
    })
}

/// A terminal for the command (of the host terminal's size), or none.
pub fn tty_size(mode: TtyMode) -> Option<Winsize> {
    let tty = match mode {
        TtyMode::Always => true,
        TtyMode::Never => false,
        TtyMode::Auto => std::io::stdin().is_terminal() && std::io::stdout().is_terminal(),
    };
    tty.then(|| crate::ui::window_size(std::io::stdout()).unwrap_or(Winsize { rows: 24, cols: 80 }))
}

/// Host variables a guest command inherits (issue: PATH HOME TERM LANG USER).
pub const INHERITED: &[&str] = &["PATH", "HOME", "TERM", "LANG", "USER"];

/// The exact argv: the command as given, `SHELL -c SCRIPT`, or `SHELL`.
pub fn argv(command: &[OsString], script: Option<&OsStr>, shell: &Path) -> Vec<Vec<u8>> {
    if !command.is_empty() {
        return command.iter().map(|a| a.as_bytes().to_vec()).collect();
    }
    let shell = shell.as_os_str().as_bytes().to_vec();
    match script {
        Some(s) => vec![shell, b"-c".to_vec(), s.as_bytes().to_vec()],
        None => vec![shell],
    }
}

/// The guest environment: inherited host variables, `PATH` with `path_prefix`
/// in front, then `-e` values replacing or adding.
pub fn environment(
    host: impl Fn(&str) -> Option<OsString>,
    path_prefix: &[PathBuf],
    extra: &[(OsString, OsString)],
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut env: Vec<(Vec<u8>, Vec<u8>)> =
        INHERITED.iter().filter_map(|k| host(k).map(|v| (k.as_bytes().to_vec(), v.into_vec()))).collect();
    if !path_prefix.is_empty() {
        let mut path: Vec<Vec<u8>> = path_prefix.iter().map(|p| p.as_os_str().as_bytes().to_vec()).collect();
        match env.iter_mut().find(|(k, _)| k == b"PATH") {
            Some((_, v)) => {
                path.push(std::mem::take(v));
                *v = path.join(&b':');
            }
            None => env.push((b"PATH".to_vec(), path.join(&b':'))),
        }
    }
    for (k, v) in extra {
        let (k, v) = (k.as_bytes().to_vec(), v.as_bytes().to_vec());
        match env.iter_mut().find(|(ek, _)| *ek == k) {
            Some(e) => e.1 = v,
            None => env.push((k, v)),
        }
    }
    env
}

/// The directories named in an environment's `PATH`, in order.
pub fn path_dirs(env: &[(Vec<u8>, Vec<u8>)]) -> Vec<PathBuf> {
    let Some((_, path)) = env.iter().find(|(k, _)| k == b"PATH") else { return Vec::new() };
    path.split(|&b| b == b':')
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(OsStr::from_bytes(d)))
        .collect()
}

/// The login shell of `uid` as the system's user database (NSS: files, LDAP,
/// systemd-homed...) records it; none for an unknown user or an empty field.
pub fn login_shell(uid: u32) -> Option<PathBuf> {
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok()??;
    Some(user.shell).filter(|s| !s.as_os_str().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_the_command_exactly() {
        let cmd: Vec<OsString> = vec!["printf".into(), "".into(), "a b\n\"c\"".into(), "\u{1f600}".into()];
        let a = argv(&cmd, None, Path::new("/bin/sh"));
        assert_eq!(
            a,
            [b"printf".to_vec(), b"".to_vec(), b"a b\n\"c\"".to_vec(), "\u{1f600}".as_bytes().to_vec()]
        );
    }

    #[test]
    fn script_and_shell_forms() {
        assert_eq!(
            argv(&[], Some(OsStr::new("echo hi")), Path::new("/bin/bash")),
            [b"/bin/bash".to_vec(), b"-c".to_vec(), b"echo hi".to_vec()]
        );
        assert_eq!(argv(&[], None, Path::new("/bin/zsh")), [b"/bin/zsh".to_vec()]);
    }

    #[test]
    fn env_inherits_prefixes_path_and_applies_overrides() {
        let host = |k: &str| match k {
            "PATH" => Some(OsString::from("/usr/bin")),
            "HOME" => Some(OsString::from("/root")),
            "SECRET" => Some(OsString::from("no")),
            _ => None,
        };
        let env = environment(
            host,
            &[PathBuf::from("/nix/store/x/bin")],
            &[("HOME".into(), "/tmp".into()), ("A".into(), "b=c".into())],
        );
        assert_eq!(
            env,
            [
                (b"PATH".to_vec(), b"/nix/store/x/bin:/usr/bin".to_vec()),
                (b"HOME".to_vec(), b"/tmp".to_vec()),
                (b"A".to_vec(), b"b=c".to_vec()),
            ]
        );
    }

    fn args(argv: &[&str]) -> CommandArgs {
        CommandArgs {
            env: vec![("KDF_X".into(), "1".into())],
            user: false,
            chdir: None,
            no_stdin: false,
            shell: Some("/bin/sh".into()),
            script: None,
            tty: TtyMode::Never,
            argv: argv.iter().map(OsString::from).collect(),
        }
    }

    #[test]
    fn path_dirs_are_the_nonempty_path_entries() {
        let env = [
            (b"HOME".to_vec(), b"/root".to_vec()),
            (b"PATH".to_vec(), b"/run/wrappers/bin::rel:/usr/bin".to_vec()),
        ];
        assert_eq!(path_dirs(&env), [PathBuf::from("/run/wrappers/bin"), "rel".into(), "/usr/bin".into()]);
        assert!(path_dirs(&[]).is_empty());
    }

    #[test]
    fn an_exec_runs_in_the_directory_given_or_below_it_with_the_streams_asked_for() {
        let e = exec(&args(&["ls", "-l"]), Path::new("/src/linux"), &[]);
        assert_eq!(e.argv, [b"ls".to_vec(), b"-l".to_vec()]);
        assert_eq!(e.cwd, b"/src/linux");
        assert!(e.env.contains(&(b"KDF_X".to_vec(), b"1".to_vec())));
        assert_eq!((e.user, e.tty, e.stdin), (None, None, true));
        let e = exec(
            &CommandArgs { chdir: Some("drivers".into()), no_stdin: true, ..args(&[]) },
            Path::new("/src/linux"),
            &[],
        );
        assert_eq!((e.cwd.as_slice(), e.stdin), (&b"/src/linux/drivers"[..], false));
        assert_eq!(e.argv, [b"/bin/sh".to_vec()], "no command: the shell");
        let e =
            exec(&CommandArgs { chdir: Some("/elsewhere".into()), ..args(&["true"]) }, Path::new("/a"), &[]);
        assert_eq!(e.cwd, b"/elsewhere");
    }

    #[test]
    fn shell_comes_from_the_user_database() {
        // root has a shell on any system these tests run on; no one has this uid.
        assert!(login_shell(0).is_some_and(|s| s.is_absolute()));
        assert_eq!(login_shell(3_999_999_999), None);
    }
}
