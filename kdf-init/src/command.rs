//! Starting a command exactly as its [`Exec`] says (the run's, from the plan,
//! or an attach session's): argv, environment, working directory, user, and
//! either pipes or a pseudo-terminal.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use kdf_proto::{Exec, Outcome, User, Winsize};
use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::unistd::Pid;

use crate::log::Fatal;

/// The running command and init's ends of its standard streams.
#[derive(Debug)]
pub struct Child {
    pub pid: Pid,
    /// Its stdout (or the pty master, which carries both output streams).
    pub out: Option<OwnedFd>,
    pub err: Option<OwnedFd>,
    /// Where the host's stdin goes (a pipe, or the pty master again).
    pub input: Option<OwnedFd>,
    /// The pty master, for window size changes.
    pub pty: Option<OwnedFd>,
}

fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

/// Fails (a setup error, not the command's) when the working directory is not
/// there: `execve` would report it as ENOENT, which reads like "not found".
pub fn check_cwd(exec: &Exec) -> Result<(), Fatal> {
    let cwd = os(&exec.cwd).to_string_lossy();
    match std::fs::metadata(os(&exec.cwd)) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Fatal(format!("{cwd} is not a directory"))),
        Err(e) => Err(Fatal(format!("cannot enter {cwd}: {e}"))),
    }
}

/// Starts the command; an `execve` failure comes back as its outcome. The
/// file the host found is tried first; if it will not execute as a search
/// would have (missing, not permitted), `PATH` is searched as usual.
pub fn spawn(exec: &Exec) -> Result<Child, Outcome> {
    if let Some(program) = &exec.program {
        match spawn_program(exec, os(program)) {
            Err((_, Some(libc::ENOENT | libc::EACCES | libc::ENOTDIR))) => {}
            other => return other.map_err(|(outcome, _)| outcome),
        }
    }
    spawn_program(exec, os(&exec.argv[0])).map_err(|(outcome, _)| outcome)
}

/// Starts `program` with the command's argv (its `argv[0]` as given), with
/// the errno of a failed `execve`.
fn spawn_program(exec: &Exec, program: &OsStr) -> Result<Child, (Outcome, Option<i32>)> {
    let mut cmd = Command::new(program);
    cmd.arg0(os(&exec.argv[0]));
    cmd.args(exec.argv[1..].iter().map(|a| os(a)));
    cmd.env_clear();
    cmd.envs(exec.env.iter().map(|(k, v)| (os(k), os(v))));
    cmd.current_dir(os(&exec.cwd));
    let user = exec.user.clone();
    let mut child = match exec.tty {
        Some(size) => with_pty(&mut cmd, size, user.as_ref()),
        None => with_pipes(&mut cmd, exec.stdin),
    }
    .map_err(|e| (Outcome::NotExecutable(format!("cannot set up the command's terminal: {e}")), None))?;
    let tty = exec.tty.is_some();
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if tty && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(u) = &user {
                drop_privileges(u)?;
            }
            Ok(())
        });
    }
    let mut spawned = cmd.spawn().map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => (Outcome::NotFound, Some(libc::ENOENT)),
        errno => (Outcome::NotExecutable(e.to_string()), errno),
    })?;
    child.pid = Pid::from_raw(spawned.id() as i32);
    take_pipes(&mut child, &mut spawned);
    // The pty slave copies held by `cmd` close when it drops here.
    drop(cmd);
    for fd in [&child.out, &child.err, &child.input].into_iter().flatten() {
        set_nonblocking(fd);
    }
    Ok(child)
}

fn with_pipes(cmd: &mut Command, stdin: bool) -> std::io::Result<Child> {
    cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    // The pipes exist only after spawn; `take_pipes` fills them in.
    Ok(Child { pid: Pid::from_raw(0), out: None, err: None, input: None, pty: None })
}

fn with_pty(cmd: &mut Command, size: Winsize, user: Option<&User>) -> std::io::Result<Child> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname_r(&master)?;
    let master: OwnedFd = master.as_fd().try_clone_to_owned()?;
    set_winsize(&master, size);
    let slave: File = OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOCTTY).open(&name)?;
    if let Some(u) = user {
        std::os::unix::fs::chown(&name, Some(u.uid), Some(u.gid))?;
    }
    cmd.stdin(slave.try_clone()?).stdout(slave.try_clone()?).stderr(slave);
    Ok(Child {
        pid: Pid::from_raw(0),
        out: Some(master.try_clone()?),
        err: None,
        input: Some(master.try_clone()?),
        pty: Some(master),
    })
}

/// Takes init's ends of the pipes out of a spawned std child.
fn take_pipes(child: &mut Child, spawned: &mut std::process::Child) {
    if let Some(p) = spawned.stdout.take() {
        child.out = Some(p.into());
    }
    if let Some(p) = spawned.stderr.take() {
        child.err = Some(p.into());
    }
    if let Some(p) = spawned.stdin.take() {
        child.input = Some(p.into());
    }
}

fn drop_privileges(u: &User) -> std::io::Result<()> {
    // SAFETY: setgroups reads `groups.len()` ids from a live vector (no
    // allocation after fork); setgid and setuid take plain integers. Order
    // matters: groups and gid before uid.
    unsafe {
        if libc::setgroups(u.groups.len(), u.groups.as_ptr()) < 0
            || libc::setgid(u.gid) < 0
            || libc::setuid(u.uid) < 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

pub fn set_winsize(master: &OwnedFd, size: Winsize) {
    let ws = libc::winsize { ws_row: size.rows, ws_col: size.cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a valid winsize from our stack.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

fn set_nonblocking(fd: &OwnedFd) {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use crate::testing::{exec, processes};

    use super::*;

    /// A file of `mode` in the temporary directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str, mode: u32) -> Scratch {
            let path = std::env::temp_dir().join(format!("kdf-init-test-{}-{name}", std::process::id()));
            std::fs::write(&path, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            Scratch(path)
        }

        fn as_str(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    // kdf reports NotFound as status 127, NotExecutable as 126 (as shells do).
    #[test]
    fn a_missing_program_is_not_found() {
        let _lock = processes();
        let outcome = spawn(&exec(&["/nonexistent/kdf-test-program"])).unwrap_err();
        assert_eq!(outcome, Outcome::NotFound);
    }

    #[test]
    fn a_program_without_execute_permission_is_not_executable() {
        let _lock = processes();
        let file = Scratch::new("no-x", 0o644);
        let outcome = spawn(&exec(&[file.as_str()])).unwrap_err();
        let Outcome::NotExecutable(why) = outcome else { panic!("{outcome:?}") };
        assert!(why.contains("Permission denied"), "{why}");
    }

    #[test]
    fn a_missing_working_directory_is_a_setup_error_not_the_commands() {
        let mut exec = exec(&["true"]);
        exec.cwd = b"/nonexistent/kdf-test-dir".to_vec();
        let err = check_cwd(&exec).unwrap_err();
        assert!(err.to_string().starts_with("cannot enter /nonexistent/kdf-test-dir: "), "{err}");
    }

    #[test]
    fn a_file_as_working_directory_is_a_setup_error() {
        let file = Scratch::new("not-a-dir", 0o644);
        let mut exec = exec(&["true"]);
        exec.cwd = file.as_str().as_bytes().to_vec();
        let err = check_cwd(&exec).unwrap_err();
        assert_eq!(err.to_string(), format!("{} is not a directory", file.as_str()));
    }
}
