//! A writer for the "new ASCII" (newc, `070701`) cpio format, the only one the
//! kernel unpacks as an initramfs, and a reader that finds one member.
//! Output is reproducible: entries sorted by path, inode numbers assigned in
//! that order, uid/gid/mtime 0.

/// One archive member; paths are relative (no leading `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir { path: String, mode: u32 },
    File { path: String, mode: u32, data: Vec<u8> },
    CharDev { path: String, mode: u32, major: u32, minor: u32 },
}

impl Entry {
    pub fn path(&self) -> &str {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::CharDev { path, .. } => path,
        }
    }
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

/// The archive bytes, trailer included. Duplicate paths keep the first entry.
pub fn write(entries: &[Entry]) -> Vec<u8> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    // A parent's path is a prefix of its children's, so it sorts first.
    sorted.sort_by(|a, b| a.path().cmp(b.path()));
    sorted.dedup_by(|a, b| a.path() == b.path());
    let mut out = Vec::new();
    for (i, entry) in sorted.iter().enumerate() {
        let ino = i as u32 + 1;
        match entry {
            Entry::Dir { path, mode } => member(&mut out, ino, S_IFDIR | mode, 2, 0, 0, path, &[]),
            Entry::File { path, mode, data } => member(&mut out, ino, S_IFREG | mode, 1, 0, 0, path, data),
            Entry::CharDev { path, mode, major, minor } => {
                member(&mut out, ino, S_IFCHR | mode, 1, *major, *minor, path, &[])
            }
        }
    }
    member(&mut out, 0, 0, 1, 0, 0, "TRAILER!!!", &[]);
    out
}

#[allow(clippy::too_many_arguments)]
fn member(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    rmajor: u32,
    rminor: u32,
    name: &str,
    data: &[u8],
) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime
        u32::try_from(data.len()).expect("initramfs member under 4 GiB"),
        0, // dev major
        0, // dev minor
        rmajor,
        rminor,
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// The data of the member named `name` in a newc archive (or a concatenation
/// of archives), if there is one; `None` also for a damaged archive.
pub fn find<'a>(archive: &'a [u8], name: &str) -> Option<&'a [u8]> {
    const HEADER: usize = 110;
    let align = |n: usize| n.checked_add(3).map(|n| n & !3);
    let mut at: usize = 0;
    loop {
        let header = archive.get(at..at.checked_add(HEADER)?)?;
        if &header[..6] != b"070701" && &header[..6] != b"070702" {
            return None;
        }
        let field = |i: usize| {
            let hex = std::str::from_utf8(&header[6 + 8 * i..14 + 8 * i]).ok()?;
            usize::from_str_radix(hex, 16).ok()
        };
        let (size, namesize) = (field(6)?, field(11)?);
        let name_at = at + HEADER;
        let member = archive.get(name_at..name_at.checked_add(namesize)?)?;
        let member = member.strip_suffix(b"\0").unwrap_or(member);
        let data_at = align(name_at + namesize)?;
        let data = archive.get(data_at..data_at.checked_add(size)?)?;
        if member == name.as_bytes() {
            return Some(data);
        }
        if member == b"TRAILER!!!" {
            // Another archive may follow, after zero padding.
            let next = archive[data_at + size..].iter().position(|&b| b != 0)?;
            at = data_at + size + next;
            continue;
        }
        at = align(data_at + size)?;
    }
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpio_archive::CpioReader;
    use std::io::Read;

    fn sample() -> Vec<Entry> {
        vec![
            Entry::File { path: "init".into(), mode: 0o755, data: b"#!elf".to_vec() },
            Entry::Dir { path: "dev".into(), mode: 0o755 },
            Entry::CharDev { path: "dev/console".into(), mode: 0o600, major: 5, minor: 1 },
            Entry::File { path: "kdf/preload".into(), mode: 0o644, data: b"virtio_pci\n".to_vec() },
            Entry::Dir { path: "kdf".into(), mode: 0o755 },
        ]
    }

    #[test]
    fn reads_back_with_an_independent_reader() {
        let bytes = write(&sample());
        let mut r = cpio_archive::newc::NewcReader::new(std::io::Cursor::new(bytes));
        let mut seen = Vec::new();
        while let Some(h) = r.read_next().unwrap() {
            let mut data = Vec::new();
            r.read_to_end(&mut data).unwrap();
            seen.push((h.name().to_string(), h.mode(), h.uid(), h.mtime(), data));
        }
        let names: Vec<_> = seen.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(names, ["dev", "dev/console", "init", "kdf", "kdf/preload"]);
        assert_eq!(seen[2].1, 0o100755);
        assert_eq!(seen[2].4, b"#!elf");
        assert_eq!(seen[1].1, 0o020600);
        assert!(seen.iter().all(|s| s.2 == 0 && s.3 == 0));
    }

    #[test]
    fn char_devices_carry_their_numbers() {
        let bytes = write(&[Entry::CharDev { path: "c".into(), mode: 0o600, major: 5, minor: 1 }]);
        // Fields are 8 hex digits after the 6-byte magic; rdevmajor/minor are the 10th and 11th.
        assert_eq!(&bytes[6 + 9 * 8..6 + 11 * 8], b"0000000500000001");
    }

    #[test]
    fn output_is_deterministic_whatever_the_input_order() {
        let mut reversed = sample();
        reversed.reverse();
        assert_eq!(write(&sample()), write(&reversed));
    }

    #[test]
    fn header_layout_matches_newc() {
        let bytes = write(&[Entry::File { path: "a".into(), mode: 0o644, data: b"xyz".to_vec() }]);
        assert!(bytes.starts_with(b"07070100000001000081a4"));
        // 110-byte header + "a\0" = 112 (aligned), then 3 data bytes padded to 4.
        assert_eq!(&bytes[110..112], b"a\0");
        assert_eq!(&bytes[112..116], b"xyz\0");
        assert!(bytes[116..].starts_with(b"070701"));
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn duplicates_keep_one_entry() {
        let e = Entry::Dir { path: "lib".into(), mode: 0o755 };
        assert_eq!(write(&[e.clone(), e.clone()]), write(&[e]));
    }

    #[test]
    fn find_reads_one_member_back() {
        let a = write(&[
            Entry::Dir { path: "kdf".into(), mode: 0o755 },
            Entry::File { path: "kdf/protocol".into(), mode: 0o644, data: b"2".to_vec() },
            Entry::File { path: "init".into(), mode: 0o755, data: b"\x7fELF...".to_vec() },
        ]);
        assert_eq!(find(&a, "kdf/protocol"), Some(&b"2"[..]));
        assert_eq!(find(&a, "init"), Some(&b"\x7fELF..."[..]));
        assert_eq!(find(&a, "missing"), None);
        let mut two = a.clone();
        two.extend([0; 8]);
        two.extend(write(&[Entry::File { path: "second".into(), mode: 0o644, data: b"x".to_vec() }]));
        assert_eq!(find(&two, "second"), Some(&b"x"[..]));
        for cut in 0..a.len() {
            let _ = find(&a[..cut], "init");
        }
        assert_eq!(find(b"070701zzzzzzzz", "init"), None);
    }
}
