//! The kernel console (`/dev/console`, the VM's serial port): where kdf-init
//! reports progress and setup failures, and how a failure ends the VM.

use std::fmt;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

use kdf_proto::ToHost;

use crate::port::Port;
use crate::power;

/// A setup step's failure, in words for the console and the host.
#[derive(Debug)]
pub struct Fatal(pub String);

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<nix::Error> for Fatal {
    fn from(e: nix::Error) -> Self {
        Fatal(e.desc().to_string())
    }
}

impl From<std::io::Error> for Fatal {
    fn from(e: std::io::Error) -> Self {
        Fatal(e.to_string())
    }
}

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

/// One line on the console, marked so kdf can tell it from the kernel's.
pub fn say(msg: &str) {
    eprintln!("kdf-init: {msg}");
}

/// Reports a failed setup step on the console and to the host, then ends the VM.
pub fn fail(port: Option<&mut Port>, step: &str, err: &Fatal) -> ! {
    say(&format!("error: cannot {step}: {err}"));
    if let Some(port) = port {
        port.send(&ToHost::Failed { step: step.to_string(), message: err.to_string() });
    }
    power::off()
}
