//! A prepared run's processes as data: QEMU's [`VmSpec`] and one
//! [`Virtiofsd`] per share, with the descriptor numbers each child gets.
//! The numbers are fixed (the session hands each descriptor over under its
//! number), so `--dry-run` prints exactly the command lines that run.

use std::os::fd::RawFd;

use super::files::MAX_SHARES;
use super::prepare::Prepared;
use crate::disks::MAX_DISKS;
use crate::vm::cmdline;
use crate::vm::disk::{Backing, DiskDevice};
use crate::vm::qemu::{Accel, GdbStub, Machine, Monitors, ShareDevice, VmSpec};
use crate::vm::virtiofsd::Virtiofsd;
use crate::vm::Transport;

/// QEMU's end of the serial console's socket pair.
pub const CONSOLE_FD: RawFd = 3;
/// QEMU's end of the kdf channel's socket pair.
pub const CHANNEL_FD: RawFd = 4;
/// QEMU's end of the attach channel's socket pair.
pub const ATTACH_FD: RawFd = 5;
/// QEMU's end of the socket pair of kdf's own QMP monitor (`--vmcore`).
pub const QMP_FD: RawFd = 6;
/// The listening socket of the QMP monitor for `kdf qmp`, `kdf dump` and `--qmp`.
pub const QMP_LISTEN_FD: RawFd = 7;
/// QEMU's end of share `i`'s connection to its virtiofsd is `FIRST_SHARE_FD + i`.
pub const FIRST_SHARE_FD: RawFd = 8;
/// QEMU's gdb stub's listening socket (`-d`): after the last share's.
pub const GDB_FD: RawFd = FIRST_SHARE_FD + MAX_SHARES as RawFd;
/// Disk `i`, when it is a scratch disk, is `FIRST_DISK_FD + 2 * i` (read-write)
/// and the next number (read-only), in an fd set of the first number.
pub const FIRST_DISK_FD: RawFd = GDB_FD + 1;
const _: () = assert!(FIRST_DISK_FD + 2 * MAX_DISKS as RawFd <= crate::child::FIRST_SPARE_FD);
/// Where each virtiofsd finds its listening socket.
pub const VIRTIOFSD_FD: RawFd = 3;

/// One virtiofsd per share, when shares travel over virtiofs.
pub fn virtiofsd(p: &Prepared) -> Vec<Virtiofsd> {
    let Some(binary) = p.virtiofsd.as_ref().filter(|_| p.transport == Transport::Virtiofs) else {
        return Vec::new();
    };
    p.shares
        .iter()
        .map(|share| Virtiofsd {
            binary: binary.clone(),
            fd: VIRTIOFSD_FD,
            shared_dir: share.host.clone(),
            // An overlay share is never written on the host.
            readonly: share.readonly || share.overlay,
            cache: share.cache,
            sandbox: p.sandbox,
            nofile: p.nofile,
        })
        .collect()
}

/// QEMU's spec under `accel` (the session may retry under TCG).
pub fn vm(p: &Prepared, accel: Accel) -> VmSpec {
    let shares = p
        .shares
        .iter()
        .enumerate()
        .map(|(i, s)| match p.transport {
            Transport::Virtiofs => {
                ShareDevice::Virtiofs { tag: format!("kdf{i}"), fd: FIRST_SHARE_FD + i as RawFd }
            }
            Transport::NineP => ShareDevice::NineP {
                tag: format!("kdf{i}"),
                path: s.host.clone(),
                readonly: s.readonly || s.overlay,
            },
        })
        .collect();
    let disks =
        p.hw.disks
            .iter()
            .enumerate()
            .map(|(i, d)| DiskDevice {
                backing: match &d.file {
                    Some(path) => Backing::Path(path.clone()),
                    None => Backing::Fd(FIRST_DISK_FD + 2 * i as RawFd),
                },
                format: d.format,
                readonly: d.readonly,
                serial: d.serial.clone(),
            })
            .collect();
    VmSpec {
        qemu: p.qemu.clone(),
        accel,
        cpus: p.cpus,
        memory_mib: p.memory_mib,
        machine: p.machine,
        firmware: if p.machine == Machine::Q35 { p.firmware.clone() } else { None },
        kernel: p.kernel.boot.clone(),
        initramfs: p.initramfs.clone(),
        cmdline: cmdline::cmdline(
            p.machine,
            p.verbose,
            p.debug.is_some(),
            accel,
            cmdline::Watchdogs::of(p.kernel.config.as_ref()),
            &p.preload,
            &with_clock_args(p, accel),
        ),
        console_fd: CONSOLE_FD,
        channel_fd: CHANNEL_FD,
        attach_fd: ATTACH_FD,
        shares,
        gdb: p.debug.map(|d| GdbStub { fd: GDB_FD, wait: d.wait }),
        network: p.network.clone(),
        monitors: Monitors {
            private_fd: p.hw.vmcore.as_ref().map(|_| QMP_FD),
            listen_fd: Some(QMP_LISTEN_FD),
        },
        disks,
        numa: p.hw.numa.clone(),
        extra: p.qemu_extra.clone(),
    }
}

/// kdf's clock arguments for this machine and accelerator, then the user's
/// `--cmdline` (later arguments win).
fn with_clock_args(p: &Prepared, accel: Accel) -> Vec<String> {
    let mut args = cmdline::clock_args(accel, p.machine, p.tsc_khz);
    args.extend(p.cmdline.iter().cloned());
    args
}
