//! The kernel console (`/dev/console`, the VM's serial port): making it init's
//! standard streams, where `log::say` writes progress and setup failures.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

/// Makes `/dev/console` init's stdin, stdout and stderr. The kernel opens it for
/// us when the initramfs has the node; this covers an initramfs without it
/// (devtmpfs is mounted first in that case).
pub fn attach() {
    if nix::fcntl::fcntl(1, nix::fcntl::FcntlArg::F_GETFD).is_ok() {
        return;
    }
    let _ = std::fs::create_dir_all("/dev");
    let _ = nix::mount::mount(
        Some("devtmpfs"),
        "/dev",
        Some("devtmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    );
    if let Ok(console) = OpenOptions::new().read(true).write(true).open("/dev/console") {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which init owns.
            unsafe { libc::dup2(console.as_raw_fd(), fd) };
        }
    }
}
