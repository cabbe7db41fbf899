//! QEMU's arguments for `--disk`: one virtio-blk device per disk, in the
//! order given (the guest names them vda, vdb, ...), each with a serial that
//! kdf-init turns into `/dev/disk/by-id/virtio-SERIAL`. Pure.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;

use super::option::escape_os;

/// How QEMU reads a disk image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Raw,
    Qcow2,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
        }
    }
}

/// Where a disk's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// A file (or block device) the user named; QEMU opens it.
    Path(PathBuf),
    /// A scratch disk, already unlinked: QEMU gets it open read-write at
    /// this number and read-only at the next one (it opens an image in both
    /// modes, and takes from an fd set only a descriptor of the same mode).
    Fd(RawFd),
}

/// One virtio-blk device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskDevice {
    pub backing: Backing,
    pub format: Format,
    pub readonly: bool,
    /// The device's serial (at most [`SERIAL_MAX`] bytes, no commas).
    pub serial: String,
}

/// virtio-blk's serial field is 20 bytes (`VIRTIO_BLK_ID_BYTES`).
pub const SERIAL_MAX: usize = 20;

/// A serial from a name: letters, digits, `.`, `_` and `-` kept, anything
/// else `_`, cut to [`SERIAL_MAX`]; a name already in `taken` gets `-2`,
/// `-3`, ... (its end cut to fit).
pub fn serial(name: &str, taken: &[String]) -> String {
    let clean: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    let base = cut(&clean, SERIAL_MAX);
    if !taken.contains(&base) {
        return base;
    }
    (2..)
        .map(|i| {
            let suffix = format!("-{i}");
            format!("{}{suffix}", cut(&clean, SERIAL_MAX - suffix.len()))
        })
        .find(|s| !taken.contains(s))
        .expect("an unused serial")
}

/// The arguments for every disk, in order; `device` is virtio-blk's name on
/// the machine's bus (`virtio-blk-pci`, `virtio-blk-device`).
pub fn args(device: &str, disks: &[DiskDevice]) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for (i, disk) in disks.iter().enumerate() {
        let mut drive = OsString::from(format!("if=none,id=disk{i},format={}", disk.format.name()));
        if disk.readonly {
            drive.push(",readonly=on");
        }
        drive.push(",file=");
        match &disk.backing {
            Backing::Path(path) => drive.push(escape_os(path.as_os_str())),
            Backing::Fd(fd) => {
                // QEMU opens `/dev/fdset/N` by duplicating a descriptor of
                // set N with the access mode it asks for ("Could not dup FD
                // for /dev/fdset/N flags 0" with a read-write one alone).
                out.extend([
                    "-add-fd".into(),
                    format!("fd={fd},set={fd}").into(),
                    "-add-fd".into(),
                    format!("fd={},set={fd}", fd + 1).into(),
                ]);
                drive.push(format!("/dev/fdset/{fd}"));
            }
        }
        out.extend([
            "-drive".into(),
            drive,
            "-device".into(),
            format!("{device},drive=disk{i},serial={}", disk.serial).into(),
        ]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(v: &[OsString]) -> String {
        v.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn serials_are_the_file_names_made_safe_short_and_unique() {
        assert_eq!(serial("disk.img", &[]), "disk.img");
        assert_eq!(serial("my disk,1.qcow2", &[]), "my_disk_1.qcow2");
        assert_eq!(serial("a-very-long-disk-name-indeed.img", &[]), "a-very-long-disk-nam");
        assert_eq!(serial("disk.img", &["disk.img".into()]), "disk.img-2");
        let taken = vec!["a-very-long-disk-nam".to_string(), "a-very-long-disk-n-2".to_string()];
        assert_eq!(serial("a-very-long-disk-name-indeed.img", &taken), "a-very-long-disk-n-3");
        assert!(serial("é", &[]).is_ascii());
    }

    #[test]
    fn disks_become_virtio_blk_devices_in_order() {
        let disks = [
            DiskDevice {
                backing: Backing::Path("/img/a,b.qcow2".into()),
                format: Format::Qcow2,
                readonly: true,
                serial: "a_b.qcow2".into(),
            },
            DiskDevice {
                backing: Backing::Fd(71),
                format: Format::Raw,
                readonly: false,
                serial: "scratch0".into(),
            },
        ];
        let j = joined(&args("virtio-blk-pci", &disks));
        assert_eq!(
            j,
            "-drive if=none,id=disk0,format=qcow2,readonly=on,file=/img/a,,b.qcow2 \
             -device virtio-blk-pci,drive=disk0,serial=a_b.qcow2 \
             -add-fd fd=71,set=71 -add-fd fd=72,set=71 -drive if=none,id=disk1,format=raw,file=/dev/fdset/71 \
             -device virtio-blk-pci,drive=disk1,serial=scratch0"
        );
        assert!(args("virtio-blk-pci", &[]).is_empty());
    }
}
