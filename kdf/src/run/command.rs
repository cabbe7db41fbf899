//! The command side of a run, resolved before boot: its argv (the command,
//! `-c SCRIPT` or a shell), environment and user; with `--root`, `PATH`,
//! home, user name and shell from the root's user database, and a command
//! the root cannot run refused with the reason.

use std::ffi::OsString;
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
    if let Some(dir) = foreign {
        let path_var = env.iter().find(|(k, _)| k == b"PATH").map(|(_, v)| v.as_slice()).unwrap_or_default();
        root::command::check(&argv[0], path_var, cwd, view, arch).map_err(|refusal| {
            hinted_status(
                format!("cannot run {program} in --root {}: {}", dir.display(), refusal.reason()),
                refusal.hint(),
                refusal.status(),
            )
        })?;
    }
    Ok(Command { argv, env, program })
}
