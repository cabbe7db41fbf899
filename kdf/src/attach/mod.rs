//! A running VM's second way in: `kdf attach` ([`session`]) runs a command or
//! a shell beside the run's command, `kdf sysrq` ([`sysrq`]) sends a SysRq
//! key; both reach the VM through the run's record ([`crate::runs`]) and its
//! attach channel ([`client`]), which `kdf run` serves ([`router`]) on a
//! second virtio-serial port. No sshd, no network: kdf-init runs the command.

mod client;
pub mod router;
pub mod session;
pub mod sysrq;
