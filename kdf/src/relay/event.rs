//! What a run's main loop hears from its threads (channel reader, stdin,
//! QEMU's stderr, the console, the vmcore writer).

use kdf_proto::ToHost;

/// What the main loop hears from the threads of a run.
#[derive(Debug)]
pub enum Event {
    Guest(ToHost),
    /// The channel ended (QEMU is gone) or broke.
    Closed(Option<String>),
    /// QEMU said KVM cannot run the guest.
    KvmFailure(String),
    /// The user typed the kill escape.
    Escape,
    /// Writing the command's output to kdf's stdout or stderr failed (not EPIPE).
    WriteFailed {
        stream: &'static str,
        error: String,
    },
    /// The console shows a complete kernel panic.
    Panicked,
    /// `--vmcore`'s dump is written, or why not.
    Dumped(Result<crate::qmp::Written, String>),
}
