//! `--disk`: parsing `FILE[,ro][,format=raw|qcow2]` and `size=SIZE`, checking
//! the files before boot, naming each disk (its virtio serial, hence
//! `/dev/disk/by-id/virtio-NAME`), and creating scratch disks: sparse,
//! already unlinked files in the run's runtime directory, gone when the run
//! ends however it ends.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::errors::{hinted, usage, usage_hinted};
use crate::shares::spec::split_escaped;
use crate::vm::disk::{self, Format};

/// The most disks a run can have (vda to vdz; their descriptors stay below
/// [`crate::child::FIRST_SPARE_FD`]).
pub const MAX_DISKS: usize = 26;

/// One `--disk` as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskSpec {
    File {
        path: PathBuf,
        readonly: bool,
        format: Option<Format>,
    },
    /// `size=SIZE`: a temporary, sparse, raw disk.
    Scratch {
        bytes: u64,
    },
}

/// A disk of the run, checked and named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// An absolute path; `None` for a scratch disk.
    pub file: Option<PathBuf>,
    pub bytes: u64,
    pub format: Format,
    pub readonly: bool,
    /// The virtio serial: the guest's `/dev/disk/by-id/virtio-SERIAL`.
    pub serial: String,
}

/// `64M`, `1G`, `512K`, `2T` -> bytes; a bare number is MiB (as for `-m`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        Some((i, 'T' | 't')) => (&s[..i], 1 << 40),
        _ => (s, 1 << 20),
    };
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size (e.g. 64M, 1G)"))?;
    match n.checked_mul(unit) {
        Some(bytes) if (1 << 20..=1 << 50).contains(&bytes) => Ok(bytes),
        _ => Err(format!("{s} is out of range (1M to 1P)")),
    }
}

/// Parses `--disk SPEC`: `FILE[,ro|rw][,format=raw|qcow2]` (`\,` for a comma
/// in the path) or `size=SIZE`.
pub fn parse_disk(spec: &str) -> Result<DiskSpec, String> {
    let (mut path, mut size, mut readonly, mut format) = (None, None, false, None);
    for item in split_escaped(spec) {
        match item.split_once('=') {
            Some(("size", v)) => size = Some(parse_size(v)?),
            Some(("format", "raw")) => format = Some(Format::Raw),
            Some(("format", "qcow2")) => format = Some(Format::Qcow2),
            Some(("format", v)) => return Err(format!("unknown format {v:?} (raw or qcow2)")),
            Some(("file", v)) => path = Some(PathBuf::from(v)),
            _ => match item.as_str() {
                "ro" => readonly = true,
                "rw" => readonly = false,
                "" => {}
                p if path.is_none() => path = Some(PathBuf::from(p)),
                other => return Err(format!("unknown item {other:?} (use FILE, ro, format=, or size=)")),
            },
        }
    }
    match (path, size) {
        (Some(path), None) => Ok(DiskSpec::File { path, readonly, format }),
        (None, Some(bytes)) if !readonly && format.is_none_or(|f| f == Format::Raw) => {
            Ok(DiskSpec::Scratch { bytes })
        }
        (None, Some(_)) => Err("a scratch disk (size=) is raw and writable".into()),
        (Some(_), Some(_)) => Err("give a FILE or a size=, not both".into()),
        (None, None) => Err("no FILE and no size= (e.g. disk.img,ro or size=1G)".into()),
    }
}

/// What is known about a file before boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    pub exists: bool,
    pub usable: bool,
    pub bytes: u64,
    pub readable: bool,
    pub writable: bool,
    pub qcow2_magic: bool,
}

/// Looks at a `--disk` file.
fn facts(path: &Path) -> FileFacts {
    use nix::unistd::{access, AccessFlags};
    let meta = std::fs::metadata(path);
    let usable = meta.as_ref().is_ok_and(|m| m.is_file() || m.file_type().is_block_device());
    let mut magic = [0u8; 4];
    let qcow2_magic =
        File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && magic == *b"QFI\xfb";
    FileFacts {
        exists: meta.is_ok(),
        usable,
        bytes: meta.as_ref().map(|m| m.len()).unwrap_or(0),
        readable: access(path, AccessFlags::R_OK).is_ok(),
        writable: access(path, AccessFlags::W_OK).is_ok(),
        qcow2_magic,
    }
}

/// The run's disks, each file checked and every disk named, before boot.
pub fn resolve(specs: &[DiskSpec], cwd: &Path) -> Result<Vec<Disk>> {
    resolve_with(specs, cwd, facts)
}

fn resolve_with(specs: &[DiskSpec], cwd: &Path, look: impl Fn(&Path) -> FileFacts) -> Result<Vec<Disk>> {
    if specs.len() > MAX_DISKS {
        return Err(usage(format!(
            "{} disks; kdf gives a guest at most {MAX_DISKS} (vda to vdz)",
            specs.len()
        )));
    }
    let mut out: Vec<Disk> = Vec::new();
    let mut scratch = 0;
    for spec in specs {
        let taken: Vec<String> = out.iter().map(|d| d.serial.clone()).collect();
        let disk = match spec {
            DiskSpec::Scratch { bytes } => {
                scratch += 1;
                let serial = disk::serial(&format!("scratch{}", scratch - 1), &taken);
                Disk { file: None, bytes: *bytes, format: Format::Raw, readonly: false, serial }
            }
            DiskSpec::File { path, readonly, format } => {
                let path = cwd.join(path);
                let format = check_file(&path, *readonly, *format, &look(&path))?;
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let bytes = look(&path).bytes;
                Disk {
                    serial: disk::serial(&name, &taken),
                    file: Some(path),
                    bytes,
                    format,
                    readonly: *readonly,
                }
            }
        };
        out.push(disk);
    }
    Ok(out)
}

/// A file's problems, named before QEMU would name them in its own words.
fn check_file(path: &Path, readonly: bool, format: Option<Format>, f: &FileFacts) -> Result<Format> {
    let shown = path.display();
    if !f.exists {
        return Err(usage_hinted(
            format!("--disk {shown} does not exist"),
            "create one (`truncate -s 1G FILE`, `qemu-img create -f qcow2 FILE 1G`) or use --disk size=1G",
        ));
    }
    if !f.usable {
        return Err(usage(format!("--disk {shown} is neither a file nor a block device")));
    }
    if !f.readable {
        return Err(hinted(
            format!("cannot read --disk {shown}: permission denied"),
            "check its permissions",
        ));
    }
    if !readonly && !f.writable {
        return Err(hinted(
            format!("cannot write --disk {shown}: permission denied"),
            format!("give it read-only: --disk {shown},ro"),
        ));
    }
    match format {
        Some(format) => Ok(format),
        // QEMU probes formats only with a warning, for a reason: a raw disk
        // the guest wrote a qcow2 header into would be read as qcow2 next time.
        None if f.qcow2_magic => Err(usage_hinted(
            format!("--disk {shown} looks like a qcow2 image"),
            format!("say which: --disk {shown},format=qcow2 (or ,format=raw to give the guest its bytes)"),
        )),
        None => Ok(Format::Raw),
    }
}

/// A scratch disk of `bytes`, sparse, in `dir`, unlinked from the start
/// (`O_TMPFILE` where the filesystem has it), so nothing is left behind:
/// open read-write, and read-only (QEMU wants both).
pub fn create_scratch(dir: &Path, bytes: u64) -> Result<(File, File)> {
    use std::os::fd::AsRawFd;
    let file = tempfile::tempfile_in(dir)
        .with_context(|| format!("failed to create a scratch disk in {}", dir.display()))?;
    file.set_len(bytes).with_context(|| format!("failed to size a scratch disk to {bytes} bytes"))?;
    // An unlinked file can still be opened again through /proc.
    let ro = File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .context("failed to open a scratch disk read-only")?;
    Ok((file, ro))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2048K"), Ok(2 << 20));
        assert_eq!(parse_size("100"), Ok(100 << 20), "a bare number is MiB, as for -m");
        assert!(parse_size("1K").is_err());
        assert!(parse_size("big").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn specs_parse() {
        let file = |p: &str, readonly, format| DiskSpec::File { path: p.into(), readonly, format };
        assert_eq!(parse_disk("disk.img"), Ok(file("disk.img", false, None)));
        assert_eq!(parse_disk("disk.img,ro"), Ok(file("disk.img", true, None)));
        assert_eq!(parse_disk("a\\,b.qcow2,format=qcow2"), Ok(file("a,b.qcow2", false, Some(Format::Qcow2))));
        assert_eq!(parse_disk("file=x,rw,format=raw"), Ok(file("x", false, Some(Format::Raw))));
        assert_eq!(parse_disk("size=64M"), Ok(DiskSpec::Scratch { bytes: 64 << 20 }));
        assert!(parse_disk("size=64M,ro").is_err());
        assert!(parse_disk("size=64M,format=qcow2").is_err());
        assert!(parse_disk("x,size=1G").is_err());
        assert!(parse_disk("x,format=vmdk").unwrap_err().contains("raw or qcow2"));
        assert!(parse_disk("").is_err());
        assert!(parse_disk("x,y").unwrap_err().contains("unknown item"));
    }

    fn ok_file() -> FileFacts {
        FileFacts {
            exists: true,
            usable: true,
            bytes: 1 << 20,
            readable: true,
            writable: true,
            qcow2_magic: false,
        }
    }

    #[test]
    fn disks_are_named_after_their_files_and_scratch_disks_numbered() {
        let specs = [
            parse_disk("size=1G").unwrap(),
            parse_disk("/img/disk.img").unwrap(),
            parse_disk("other/disk.img,ro").unwrap(),
            parse_disk("size=64M").unwrap(),
        ];
        let disks = resolve_with(&specs, Path::new("/work"), |_| ok_file()).unwrap();
        let serials: Vec<&str> = disks.iter().map(|d| d.serial.as_str()).collect();
        assert_eq!(serials, ["scratch0", "disk.img", "disk.img-2", "scratch1"]);
        assert_eq!(disks[2].file.as_deref(), Some(Path::new("/work/other/disk.img")));
        assert!(disks[2].readonly && !disks[1].readonly);
        assert_eq!((disks[0].file.as_ref(), disks[0].bytes), (None, 1 << 30));
    }

    #[test]
    fn files_are_checked_before_boot() {
        let one = |spec: &str, facts: FileFacts| {
            resolve_with(&[parse_disk(spec).unwrap()], Path::new("/w"), |_| facts.clone())
                .map_err(|e| format!("{e:#} / {}", crate::errors::hint_of(&e).unwrap_or("")))
        };
        let e = one("x", FileFacts { exists: false, ..ok_file() }).unwrap_err();
        assert!(e.contains("--disk /w/x does not exist") && e.contains("size=1G"), "{e}");
        let e = one("x", FileFacts { writable: false, ..ok_file() }).unwrap_err();
        assert!(e.contains("cannot write --disk /w/x") && e.contains("--disk /w/x,ro"), "{e}");
        assert!(one("x,ro", FileFacts { writable: false, ..ok_file() }).is_ok());
        let e = one("x", FileFacts { qcow2_magic: true, ..ok_file() }).unwrap_err();
        assert!(e.contains("looks like a qcow2 image") && e.contains("format=qcow2"), "{e}");
        assert_eq!(
            one("x,format=qcow2", FileFacts { qcow2_magic: true, ..ok_file() }).unwrap()[0].format,
            Format::Qcow2
        );
        assert!(one("x", FileFacts { usable: false, ..ok_file() }).is_err());
        let many: Vec<DiskSpec> = (0..27).map(|_| DiskSpec::Scratch { bytes: 1 << 20 }).collect();
        assert!(resolve_with(&many, Path::new("/"), |_| ok_file()).is_err());
    }

    #[test]
    fn a_scratch_disk_is_sparse_and_leaves_nothing_behind() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let (f, ro) = create_scratch(dir.path(), 1 << 30).unwrap();
        let meta = f.metadata().unwrap();
        assert_eq!(ro.metadata().unwrap().ino(), meta.ino(), "the same file, twice");
        assert_eq!(meta.len(), 1 << 30);
        assert!(meta.blocks() * 512 < 1 << 20, "sparse: {} blocks", meta.blocks());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no name in the directory");
    }
}
