//! Choosing virtiofsd's sandbox: what this host lets it do, probed before
//! it starts (a virtiofsd that cannot enter its sandbox refuses to run).

use crate::ui::say;
use crate::vm::virtiofsd::Sandbox;

/// virtiofsd sandboxes itself in namespaces where the host allows it, else
/// (as root) in a chroot, else not at all. Its namespace sandbox first makes
/// `/` a recursive slave mount in a new mount namespace and mounts a proc
/// there: where that fails (a chroot whose root is no mount point,
/// containers, CI runners that restrict mount namespaces) virtiofsd would
/// refuse to start, so kdf tries the same steps in a throwaway child first.
pub fn choose(verbose: bool) -> Sandbox {
    let root = nix::unistd::getuid().is_root();
    match probe_namespace_sandbox(root) {
        Ok(()) => Sandbox::Namespace,
        Err(why) => {
            let (fallback, name) = if root { (Sandbox::Chroot, "chroot") } else { (Sandbox::None, "none") };
            if verbose {
                say(&format!(
                    "virtiofsd cannot sandbox itself in namespaces here ({why}); using --sandbox {name}"
                ));
            }
            fallback
        }
    }
}

/// The first steps of virtiofsd's namespace sandbox, in a child that exits.
fn probe_namespace_sandbox(root: bool) -> std::io::Result<()> {
    use nix::sched::CloneFlags;
    let flags =
        if root { CloneFlags::CLONE_NEWNS } else { CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS };
    let mut probe = std::process::Command::new("true");
    probe
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: between fork and exec the closure makes only async-signal-safe
    // system calls (unshare, mount) with static C strings; it allocates nothing.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut probe, move || {
            nix::sched::unshare(flags)?;
            let slave = libc::MS_SLAVE | libc::MS_REC;
            if libc::mount(std::ptr::null(), c"/".as_ptr(), std::ptr::null(), slave, std::ptr::null()) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let proc_flags = libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_NOSUID | libc::MS_RELATIME;
            if libc::mount(
                c"proc".as_ptr(),
                c"/proc".as_ptr(),
                c"proc".as_ptr(),
                proc_flags,
                std::ptr::null(),
            ) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    match probe.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(std::io::Error::other(format!("the probe exited with {s}"))),
        Err(e) => Err(e),
    }
}
