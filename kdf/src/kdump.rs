//! makedumpfile's flattened format, which is how QEMU (before 8.2) writes a
//! kdump file to a descriptor: a 4096-byte header, then records of
//! `offset, size` (big-endian i64) and `size` bytes meant for that offset,
//! ending with `-1, -1`. `crash` reads it, libkdumpfile (drgn) does not, so
//! kdf writes the records where they belong: a regular kdump file. A stream
//! that is not flattened (an ELF core) is copied as it is.
//!
//! QEMU 7.2 also leaves the kdump header's utsname empty, and libkdumpfile
//! takes the architecture from it ("kdump_get_string_attr(KDUMP_ATTR_ARCH_NAME):
//! Key has no value" from drgn): kdf fills it in, the release from the
//! dump's own vmcoreinfo (`OSRELEASE=`).

use std::io::{self, Read, Seek, SeekFrom, Write};

const SIGNATURE: &[u8] = b"makedumpfile\0";
/// The flattened header's size, signature included.
const HEADER: usize = 4096;
/// No record is larger than this (QEMU writes a page or a header at a time).
const MAX_RECORD: i64 = 1 << 30;
/// A kdump file's signature, at offset 0.
const KDUMP: &[u8] = b"KDUMP   ";
/// `struct new_utsname` in the kdump header: six 65-byte strings from offset
/// 12 (after the signature and the header version).
const UTS_OFFSET: usize = 12;
const UTS_FIELD: usize = 65;
/// The guest's architecture (kdf boots x86_64 guests).
const MACHINE: &str = "x86_64";

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("flattened kdump stream: {what}"))
}

fn be_i64(b: &[u8]) -> i64 {
    i64::from_be_bytes(b.try_into().expect("8 bytes"))
}

/// Reads as much of `buf` as `src` has; the number of bytes read.
fn read_full(src: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Copies the dump in `src` into `dst`, unflattening it if it is flattened.
/// Returns the size of the file written.
pub fn write(mut src: impl Read, dst: &mut (impl Write + Seek)) -> io::Result<u64> {
    let mut head = vec![0u8; HEADER];
    let n = read_full(&mut src, &mut head)?;
    if n < SIGNATURE.len() || &head[..SIGNATURE.len()] != SIGNATURE {
        dst.write_all(&head[..n])?;
        let copied = io::copy(&mut src, dst)?;
        return Ok(n as u64 + copied);
    }
    if n < HEADER {
        return Err(invalid("the header is cut short"));
    }
    let mut end = 0u64;
    let mut buf = Vec::new();
    let (mut header, mut release) = (None::<Vec<u8>>, None::<String>);
    loop {
        let mut record = [0u8; 16];
        if read_full(&mut src, &mut record)? < record.len() {
            return Err(invalid("the stream ends without its end mark"));
        }
        let (offset, size) = (be_i64(&record[..8]), be_i64(&record[8..]));
        if offset == -1 && size == -1 {
            if let (Some(mut header), Some(release)) = (header, release) {
                if fill_utsname(&mut header, &release) {
                    dst.seek(SeekFrom::Start(0))?;
                    dst.write_all(&header)?;
                }
            }
            return Ok(end);
        }
        if offset < 0 || !(0..=MAX_RECORD).contains(&size) {
            return Err(invalid(&format!("a record at {offset} of {size} bytes")));
        }
        buf.resize(size as usize, 0);
        if read_full(&mut src, &mut buf)? < buf.len() {
            return Err(invalid("a record is cut short"));
        }
        dst.seek(SeekFrom::Start(offset as u64))?;
        dst.write_all(&buf)?;
        end = end.max(offset as u64 + size as u64);
        if offset == 0 && buf.starts_with(KDUMP) {
            header = Some(buf.clone());
        } else if release.is_none() {
            // The vmcoreinfo note comes before the pages.
            release = os_release(&buf);
        }
    }
}

/// `OSRELEASE=...` in a vmcoreinfo.
fn os_release(data: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"OSRELEASE=";
    let at = data.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let value: Vec<u8> = data[at..].iter().take_while(|&&b| b != b'\n' && b != 0).copied().collect();
    let value = String::from_utf8(value).ok()?;
    (!value.is_empty() && value.len() < UTS_FIELD).then_some(value)
}

/// Fills the empty fields of a kdump header's utsname (QEMU 7.2 writes only
/// the machine): `Linux`, `release`, a version (unknown to QEMU) saying where
/// it came from, the machine. False if the header is too short or every
/// field that matters was there.
pub fn fill_utsname(header: &mut [u8], release: &str) -> bool {
    let field = |i: usize| UTS_OFFSET + i * UTS_FIELD;
    if header.len() < field(6) {
        return false;
    }
    let values = [(0, "Linux"), (2, release), (3, "unknown (QEMU dump)"), (4, MACHINE)];
    let mut filled = false;
    for (i, value) in values {
        if header[field(i)] != 0 {
            continue;
        }
        let bytes = &value.as_bytes()[..value.len().min(UTS_FIELD - 1)];
        header[field(i)..field(i) + bytes.len()].copy_from_slice(bytes);
        filled = true;
    }
    filled
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn flattened(records: &[(i64, &[u8])], end: bool) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.resize(16, 0);
        out.extend(1i64.to_be_bytes());
        out.extend(1i64.to_be_bytes());
        out.resize(HEADER, 0);
        for (offset, data) in records {
            out.extend(offset.to_be_bytes());
            out.extend((data.len() as i64).to_be_bytes());
            out.extend_from_slice(data);
        }
        if end {
            out.extend((-1i64).to_be_bytes());
            out.extend((-1i64).to_be_bytes());
        }
        out
    }

    #[test]
    fn records_land_at_their_offsets_in_any_order() {
        let stream = flattened(&[(8, b"world"), (0, b"KDUMP   "), (20, b"!")], true);
        let mut file = Cursor::new(Vec::new());
        assert_eq!(write(stream.as_slice(), &mut file).unwrap(), 21);
        let mut want = b"KDUMP   world".to_vec();
        want.resize(20, 0);
        want.push(b'!');
        assert_eq!(file.into_inner(), want);
    }

    #[test]
    fn a_stream_read_in_small_pieces_is_the_same() {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(3);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let stream = flattened(&[(0, b"abc"), (3, b"defgh")], true);
        let mut file = Cursor::new(Vec::new());
        write(Trickle(&stream), &mut file).unwrap();
        assert_eq!(file.into_inner(), b"abcdefgh");
    }

    #[test]
    fn an_elf_core_is_copied_as_it_is() {
        let elf = b"\x7fELF and the rest of a core".repeat(300);
        let mut file = Cursor::new(Vec::new());
        assert_eq!(write(elf.as_slice(), &mut file).unwrap(), elf.len() as u64);
        assert_eq!(file.into_inner(), elf);
    }

    fn kdump_header() -> Vec<u8> {
        let mut h = KDUMP.to_vec();
        h.extend(6i32.to_le_bytes());
        h.resize(4096, 0);
        h
    }

    #[test]
    fn an_empty_utsname_is_filled_from_the_vmcoreinfo() {
        let note = b"\0\0VMCOREINFO\0OSRELEASE=7.3.4\nPAGESIZE=4096\n";
        let stream = flattened(&[(0, &kdump_header()), (8192, note), (4096 * 3, b"OSRELEASE=bogus\n")], true);
        let mut file = Cursor::new(Vec::new());
        write(stream.as_slice(), &mut file).unwrap();
        let out = file.into_inner();
        let field = |i: usize| {
            let f = &out[UTS_OFFSET + i * UTS_FIELD..UTS_OFFSET + (i + 1) * UTS_FIELD];
            String::from_utf8(f.iter().take_while(|&&b| b != 0).copied().collect()).unwrap()
        };
        assert_eq!((field(0), field(2), field(4)), ("Linux".into(), "7.3.4".into(), "x86_64".into()));
        assert!(!field(3).is_empty(), "libkdumpfile wants a version");
        assert_eq!(&out[..8], KDUMP);
        assert_eq!(&out[8192..8192 + note.len()], note);
    }

    #[test]
    fn fields_already_there_are_kept() {
        let mut h = kdump_header();
        let machine = UTS_OFFSET + 4 * UTS_FIELD;
        h[machine..machine + 7].copy_from_slice(b"aarch64");
        assert!(fill_utsname(&mut h, "1.0"));
        assert_eq!(&h[machine..machine + 8], b"aarch64\0", "QEMU's machine stays");
        assert_eq!(&h[UTS_OFFSET..UTS_OFFSET + 6], b"Linux\0");
        assert!(!fill_utsname(&mut h, "2.0"), "nothing left to fill");
        assert!(!fill_utsname(&mut [0u8; 100], "1.0"), "too short");
        assert_eq!(os_release(b"x\nOSRELEASE=6.1.0-9-amd64\nY=1"), Some("6.1.0-9-amd64".into()));
        assert_eq!(os_release(b"nothing"), None);
    }

    #[test]
    fn a_broken_stream_is_an_error() {
        let mut file = Cursor::new(Vec::new());
        assert!(write(flattened(&[(0, b"abc")], false).as_slice(), &mut file).is_err(), "no end mark");
        let mut cut = flattened(&[(0, b"abcdef")], true);
        cut.truncate(HEADER + 16 + 2);
        assert!(write(cut.as_slice(), &mut file).is_err(), "a short record");
        let mut bad = flattened(&[], false);
        bad.extend(5i64.to_be_bytes());
        bad.extend((-7i64).to_be_bytes());
        assert!(write(bad.as_slice(), &mut file).is_err(), "a negative size");
        assert!(write(&flattened(&[], true)[..100], &mut file).is_err(), "a short header");
    }
}
