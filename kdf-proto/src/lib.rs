//! The wire protocol between `kdf` (host) and `kdf-init` (guest PID 1), plus the
//! small pure helpers both sides need (`modules.dep` parsing).
//!
//! One virtio-serial port carries every message in both directions, framed as
//! `u32 payload length (LE) | u8 tag | payload`. The host speaks only after the guest's
//! [`ToHost::Hello`], so nothing is lost while the port is still closed.

pub mod codec;
pub mod frame_buffer;
pub mod message;
pub mod modules_dep;

pub use frame_buffer::FrameBuffer;
pub use message::{read_frame, write_frame, Outcome, Plan, Share, ToGuest, ToHost, User, Winsize};

/// Bumped whenever a message changes shape; both sides refuse a mismatch.
pub const PROTOCOL_VERSION: u32 = 1;

/// The virtio-serial port name kdf-init looks for in `/sys/class/virtio-ports`.
pub const PORT_NAME: &str = "org.kdf.ctl";

/// Where kdf puts the list of modules kdf-init loads before it can talk to the host.
pub const PRELOAD_PATH: &str = "kdf/preload";

/// The largest frame either side accepts (a plan carries the whole argv and env).
pub const MAX_FRAME: usize = 64 << 20;

/// The largest chunk of stdout/stderr/stdin data in one frame.
pub const MAX_DATA: usize = 32 << 10;

/// How many bytes of stdin the host may send before kdf-init acknowledges them.
pub const STDIN_WINDOW: u32 = 256 << 10;
