//! The wire protocol between `kdf` (host) and `kdf-init` (guest PID 1), plus the
//! small pure helpers both sides need (`modules.dep` parsing).
//!
//! One virtio-serial port carries every message of the run in both
//! directions, framed as `u32 payload length (LE) | u8 tag | payload`. The
//! host speaks only after the guest's [`ToHost::Hello`], so nothing is lost
//! while the port is still closed. A second port ([`ATTACH_PORT_NAME`])
//! carries `kdf attach` and `kdf sysrq` sessions, one after another, in the
//! same frames.

pub mod codec;
pub mod frame_buffer;
pub mod message;
pub mod modules_dep;
pub mod plan;

pub use frame_buffer::FrameBuffer;
pub use message::{read_frame, write_frame, Outcome, ToGuest, ToHost};
pub use plan::{Exec, ModuleFile, Network, Plan, Share, User, Winsize};

/// Bumped whenever a message changes shape; both sides refuse a mismatch.
pub const PROTOCOL_VERSION: u32 = 7;

/// The virtio-serial port name kdf-init looks for in `/sys/class/virtio-ports`.
pub const PORT_NAME: &str = "org.kdf.ctl";

/// The port of `kdf attach` and `kdf sysrq` (see [`ToGuest::Attach`]).
pub const ATTACH_PORT_NAME: &str = "org.kdf.attach";

/// Where kdf puts the list of extra modules (`kdf build initramfs --module`)
/// kdf-init loads at boot.
pub const PRELOAD_PATH: &str = "kdf/preload";

/// The kernel command-line parameter naming the modules kdf-init loads before
/// it can reach the host: the virtio transport of the machine kdf chose
/// (`virtio_pci` or `virtio_mmio`) and `virtio_console`.
pub const CMDLINE_PRELOAD: &str = "kdf.preload";

/// The modules a kernel command line asks kdf-init to preload.
pub fn cmdline_preload(cmdline: &str) -> Vec<String> {
    let key = format!("{CMDLINE_PRELOAD}=");
    cmdline
        .split_whitespace()
        .filter_map(|arg| arg.strip_prefix(&key))
        .flat_map(|list| list.split(','))
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect()
}

/// Where kdf-init mounts a fresh tmpfs of the guest's own, over the host's
/// root (writable in the guest whatever the shares are).
pub const GUEST_TMPFS: &[&str] = &["/tmp", "/run", "/var/tmp", "/dev/shm"];

/// The directories kdf-init mounts on at the top of the guest's root (the
/// early kernel filesystems and [`GUEST_TMPFS`]; the rest are inside them).
/// A `--root` lacking one gets it in a tmpfs overlay.
pub const ROOT_MOUNT_POINTS: &[&str] = &["/dev", "/proc", "/sys", "/tmp", "/run", "/var/tmp"];

/// The file kdf-init replaces with a guest-only one when the guest has a network.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The largest frame the guest accepts (a plan carries the whole argv and env).
pub const MAX_FRAME: usize = 64 << 20;

/// The largest frame the host accepts: output chunks are at most [`MAX_DATA`],
/// and nothing else a guest sends is large.
pub const MAX_TO_HOST: usize = 1 << 20;

/// The largest chunk of stdout/stderr/stdin data in one frame.
pub const MAX_DATA: usize = 32 << 10;

/// How many bytes of stdin the host may send before kdf-init acknowledges them.
pub const STDIN_WINDOW: u32 = 256 << 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_modules_come_from_the_command_line() {
        let line = "console=ttyS0 kdf.preload=virtio_mmio,virtio_console quiet kdf.preloadx=no\n";
        assert_eq!(cmdline_preload(line), ["virtio_mmio", "virtio_console"]);
        assert!(cmdline_preload("quiet").is_empty());
    }
}
