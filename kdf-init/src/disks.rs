//! `/dev/disk/by-id/virtio-SERIAL` for each virtio disk, as udev would link
//! it: kdf gives every `--disk` a serial named after its file, so a script
//! can name a disk without counting `/dev/vd*`.

use std::path::{Path, PathBuf};

use crate::log::say;

/// The links for `(device name, serial)` pairs: `(link, target)`.
pub fn links(disks: &[(String, String)]) -> Vec<(PathBuf, PathBuf)> {
    disks
        .iter()
        .filter(|(_, serial)| !serial.is_empty() && !serial.contains('/') && serial != "." && serial != "..")
        .map(|(name, serial)| {
            (
                PathBuf::from(format!("/dev/disk/by-id/virtio-{serial}")),
                PathBuf::from(format!("../../{name}")),
            )
        })
        .collect()
}

/// The virtio disks (`vd*`) in `sys_block` with their serials.
fn virtio_disks(sys_block: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(sys_block) else { return Vec::new() };
    let mut out: Vec<(String, String)> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.starts_with("vd"))
        .filter_map(|name| {
            let serial = std::fs::read_to_string(sys_block.join(&name).join("serial")).ok()?;
            Some((name, serial.trim().to_string()))
        })
        .collect();
    out.sort();
    out
}

/// Makes the links; a failure is a warning (the disks are there anyway).
pub fn link_by_id() {
    for (link, target) in links(&virtio_disks(Path::new("/sys/block"))) {
        let made = std::fs::create_dir_all("/dev/disk/by-id")
            .and_then(|()| std::os::unix::fs::symlink(&target, &link));
        if let Err(e) = made {
            say(&format!("warning: cannot link {}: {e}", link.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_disk_with_a_serial_gets_a_link_to_its_node() {
        let disks = [
            ("vda".to_string(), "scratch0".to_string()),
            ("vdb".into(), "disk.img".into()),
            ("vdc".into(), "".into()),
            ("vdd".into(), "../x".into()),
        ];
        assert_eq!(
            links(&disks),
            [
                (PathBuf::from("/dev/disk/by-id/virtio-scratch0"), PathBuf::from("../../vda")),
                ("/dev/disk/by-id/virtio-disk.img".into(), "../../vdb".into()),
            ]
        );
    }

    #[test]
    fn virtio_disks_are_read_from_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        for (name, serial) in [("vdb", "b\n"), ("vda", "a"), ("sda", "s")] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("serial"), serial).unwrap();
        }
        std::fs::create_dir(dir.path().join("vdc")).unwrap();
        assert_eq!(
            virtio_disks(dir.path()),
            [("vda".to_string(), "a".to_string()), ("vdb".into(), "b".into())]
        );
    }
}
