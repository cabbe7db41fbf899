//! Reaping with two waiters. PID 1's main relay reaps every child (orphans
//! included) while it waits for the run's command; the attach thread waits
//! for its session's command. The main relay keeps the statuses of the
//! commands the attach thread started ([`spawn_kept`]) for [`take`]. One lock
//! covers every `waitpid` and the table, so no status falls between them.

use std::sync::{Mutex, MutexGuard};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

#[derive(Debug)]
struct Table {
    /// Processes whose status [`take`] will want.
    kept: Vec<Pid>,
    /// Their statuses, once the main relay reaped them.
    exited: Vec<(Pid, WaitStatus)>,
}

static TABLE: Mutex<Table> = Mutex::new(Table { kept: Vec::new(), exited: Vec::new() });

fn table() -> MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts a process with `spawn` and keeps its status for [`take`]. The lock
/// is held across the fork, so the process cannot be reaped before it is known.
pub fn spawn_kept<T, E>(spawn: impl FnOnce() -> Result<T, E>, pid: impl Fn(&T) -> Pid) -> Result<T, E> {
    let mut table = table();
    let started = spawn()?;
    table.kept.push(pid(&started));
    Ok(started)
}

/// Reaps every exited child (PID 1's duty); `main`'s status if it is among
/// them. The statuses of kept processes are set aside for [`take`].
pub fn reap_all(main: Pid) -> Option<WaitStatus> {
    let mut table = table();
    let mut found = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return found,
            Ok(status) => match status.pid() {
                Some(pid) if pid == main => found = Some(status),
                Some(pid) if table.kept.contains(&pid) => table.exited.push((pid, status)),
                _ => {}
            },
        }
    }
}

/// A kept process's status once it has exited (reaped here or by [`reap_all`]).
pub fn take(pid: Pid) -> Option<WaitStatus> {
    let mut table = table();
    let status = match table.exited.iter().position(|(p, _)| *p == pid) {
        Some(i) => Some(table.exited.remove(i).1),
        None => match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => None,
            Ok(status) => Some(status),
            // Not our child (any more): no status will ever come, and the
            // waiter must not wait for one (the relay reports it as unexpected).
            Err(_) => Some(WaitStatus::StillAlive),
        },
    };
    if status.is_some() {
        table.kept.retain(|p| *p != pid);
    }
    status
}

/// Stops keeping `pid`'s status: a hung-up session's command may outlive it,
/// and is reaped as any orphan.
pub fn forget(pid: Pid) {
    let mut table = table();
    table.kept.retain(|p| *p != pid);
    table.exited.retain(|(p, _)| *p != pid);
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::testing::processes;

    /// Starts `sh -c script`; these tests reap through the module.
    fn start(script: &str) -> std::io::Result<Pid> {
        Command::new("/bin/sh").args(["-c", script]).spawn().map(|c| Pid::from_raw(c.id() as i32))
    }

    /// Waits until `pid` has exited and awaits reaping.
    fn zombie(pid: Pid) {
        wait_for(|| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
            (state == Some('Z')).then_some(WaitStatus::StillAlive)
        });
    }

    fn wait_for(mut check: impl FnMut() -> Option<WaitStatus>) -> WaitStatus {
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = check() {
                return status;
            }
            assert!(start.elapsed() < std::time::Duration::from_secs(20), "no exit");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn a_kept_status_reaped_by_the_main_relay_is_handed_over() {
        let _lock = processes();
        let main = start("sleep 30").unwrap();
        let kept = spawn_kept(|| start("exit 7"), |p| *p).unwrap();
        // The main relay reaps everything, the kept command included.
        zombie(kept);
        assert_eq!(reap_all(main), None);
        assert_eq!(table().exited, [(kept, WaitStatus::Exited(kept, 7))]);
        assert_eq!(take(kept), Some(WaitStatus::Exited(kept, 7)));
        assert!(table().kept.is_empty() && table().exited.is_empty());
        nix::sys::signal::kill(main, nix::sys::signal::SIGKILL).unwrap();
        wait_for(|| reap_all(main));
    }

    #[test]
    fn a_kept_status_is_reaped_by_its_waiter_when_the_main_relay_is_not_looking() {
        let _lock = processes();
        let kept = spawn_kept(|| start("exit 3"), |p| *p).unwrap();
        assert_eq!(wait_for(|| take(kept)), WaitStatus::Exited(kept, 3));
    }

    #[test]
    fn an_unkept_orphan_is_reaped_and_dropped() {
        let _lock = processes();
        let other = start("exit 1").unwrap();
        let main = start("sleep 0.3").unwrap();
        let status = wait_for(|| reap_all(main));
        assert_eq!(status, WaitStatus::Exited(main, 0));
        reap_all(main);
        assert!(table().exited.iter().all(|(p, _)| *p != other));
        let forgotten = spawn_kept(|| start("exit 2"), |p| *p).unwrap();
        forget(forgotten);
        zombie(forgotten);
        reap_all(main);
        assert!(table().exited.is_empty(), "a forgotten command's status is not kept");
    }
}
