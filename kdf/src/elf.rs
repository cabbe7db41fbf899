//! A small ELF reader for what kdf asks of kernels, modules and kdf-init: the
//! header's class, byte order and machine; program headers (PT_INTERP,
//! PT_NOTE notes); sections by name (a module's `.modinfo`). Every offset and
//! size from the file is checked, so malformed or truncated input is an error,
//! never a panic.

use anyhow::{bail, Context, Result};

pub const EM_386: u16 = 3;
pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
const SHT_NOBITS: u32 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Elf32,
    Elf64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

/// An ELF file whose header has been read.
#[derive(Debug, Clone, Copy)]
pub struct Elf<'a> {
    bytes: &'a [u8],
    pub class: Class,
    pub endian: Endian,
    /// `e_machine`, e.g. [`EM_X86_64`].
    pub machine: u16,
}

/// A program header: its type and the bytes of the file it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub kind: u32,
    pub offset: u64,
    pub size: u64,
    pub align: u64,
}

/// A note in a PT_NOTE segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note<'a> {
    /// The owner, without its NUL (`Xen`, `GNU`, `Linux`).
    pub name: &'a [u8],
    pub kind: u32,
    pub desc: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
struct SectionHeader {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
}

/// Where the header keeps a table's offset, entry size and entry count.
struct TableFields {
    offset: u64,
    entsize: u64,
    count: u64,
}

/// A common name for an `e_machine` value, for error messages.
pub fn machine_name(machine: u16) -> Option<&'static str> {
    Some(match machine {
        3 => "i386",
        8 => "mips",
        20 => "powerpc",
        21 => "powerpc64",
        22 => "s390",
        40 => "arm",
        62 => "x86_64",
        183 => "aarch64",
        243 => "riscv",
        258 => "loongarch",
        _ => return None,
    })
}

impl<'a> Elf<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Elf<'a>> {
        if !bytes.starts_with(b"\x7fELF") {
            bail!("not an ELF file (no \\x7fELF magic)");
        }
        let class = match bytes.get(4) {
            Some(1) => Class::Elf32,
            Some(2) => Class::Elf64,
            other => bail!("unknown ELF class {other:?}"),
        };
        let endian = match bytes.get(5) {
            Some(1) => Endian::Little,
            Some(2) => Endian::Big,
            other => bail!("unknown ELF byte order {other:?}"),
        };
        let header = match class {
            Class::Elf32 => 52,
            Class::Elf64 => 64,
        };
        if bytes.len() < header {
            bail!("truncated ELF header: {} bytes of {header}", bytes.len());
        }
        let mut elf = Elf { bytes, class, endian, machine: 0 };
        elf.machine = elf.uint(bytes, 18, 2)? as u16;
        Ok(elf)
    }

    /// The program headers.
    pub fn segments(&self) -> Result<Vec<Segment>> {
        let (fields, min) = match self.class {
            Class::Elf32 => (TableFields { offset: 0x1c, entsize: 0x2a, count: 0x2c }, 32),
            Class::Elf64 => (TableFields { offset: 0x20, entsize: 0x36, count: 0x38 }, 56),
        };
        // p_offset, p_filesz and p_align: after p_flags in ELF64, spread in ELF32.
        let (offset, size, align) = match self.class {
            Class::Elf32 => (4, 16, 28),
            Class::Elf64 => (8, 32, 48),
        };
        self.table(&fields, min, "program header")?
            .into_iter()
            .map(|e| {
                Ok(Segment {
                    kind: self.uint(e, 0, 4)? as u32,
                    offset: self.word(e, offset)?,
                    size: self.word(e, size)?,
                    align: self.word(e, align)?,
                })
            })
            .collect()
    }

    /// Whether it has a PT_INTERP program header: it needs a dynamic loader.
    pub fn has_interpreter(&self) -> Result<bool> {
        Ok(self.segments()?.iter().any(|s| s.kind == PT_INTERP))
    }

    /// The dynamic loader its PT_INTERP names (without the NUL), if any.
    pub fn interpreter(&self) -> Result<Option<&'a [u8]>> {
        let Some(seg) = self.segments()?.into_iter().find(|s| s.kind == PT_INTERP) else { return Ok(None) };
        let path = self.slice(self.bytes, seg.offset, seg.size)?;
        Ok(Some(path.split(|&b| b == 0).next().unwrap_or_default()))
    }

    /// Every note in its PT_NOTE segments.
    pub fn notes(&self) -> Result<Vec<Note<'a>>> {
        let mut notes = Vec::new();
        for seg in self.segments()?.into_iter().filter(|s| s.kind == PT_NOTE) {
            // Name and descriptor are padded to 4 bytes, or 8 in an 8-aligned segment.
            let align = if seg.align == 8 { 8 } else { 4 };
            let mut rest = self.slice(self.bytes, seg.offset, seg.size)?;
            // Fewer bytes than a note header: padding at the end.
            while rest.len() >= 12 {
                let namesz = self.uint(rest, 0, 4)?;
                let descsz = self.uint(rest, 4, 4)?;
                let name = self.slice(rest, 12, namesz)?;
                let desc_at = (12 + namesz).next_multiple_of(align);
                let desc = self.slice(rest, desc_at, descsz)?;
                let next = (desc_at + descsz).next_multiple_of(align);
                let name = name.strip_suffix(b"\0").unwrap_or(name);
                notes.push(Note { name, kind: self.uint(rest, 8, 4)? as u32, desc });
                rest = usize::try_from(next).ok().and_then(|n| rest.get(n..)).unwrap_or_default();
            }
        }
        Ok(notes)
    }

    /// The contents of the section called `name`, if there is one (empty for
    /// a section that takes no room in the file, like `.bss`).
    pub fn section(&self, name: &str) -> Result<Option<&'a [u8]>> {
        let headers = self.section_headers()?;
        if headers.is_empty() {
            return Ok(None);
        }
        let index_at = match self.class {
            Class::Elf32 => 0x32,
            Class::Elf64 => 0x3e,
        };
        let index = self.uint(self.bytes, index_at, 2)?;
        let table = headers
            .get(index as usize)
            .with_context(|| format!("the section name table is section {index} of {}", headers.len()))?;
        let names = self.slice(self.bytes, table.offset, table.size)?;
        for h in &headers {
            let tail = names.get(h.name as usize..).context("a section's name lies past the name table")?;
            let end = tail.iter().position(|&c| c == 0).context("a section's name has no terminating NUL")?;
            if &tail[..end] != name.as_bytes() {
                continue;
            }
            if h.kind == SHT_NOBITS {
                return Ok(Some(&[]));
            }
            return self.slice(self.bytes, h.offset, h.size).map(Some);
        }
        Ok(None)
    }

    fn section_headers(&self) -> Result<Vec<SectionHeader>> {
        let (fields, min) = match self.class {
            Class::Elf32 => (TableFields { offset: 0x20, entsize: 0x2e, count: 0x30 }, 40),
            Class::Elf64 => (TableFields { offset: 0x28, entsize: 0x3a, count: 0x3c }, 64),
        };
        let (offset, size) = match self.class {
            Class::Elf32 => (0x10, 0x14),
            Class::Elf64 => (0x18, 0x20),
        };
        self.table(&fields, min, "section header")?
            .into_iter()
            .map(|e| {
                Ok(SectionHeader {
                    name: self.uint(e, 0, 4)? as u32,
                    kind: self.uint(e, 4, 4)? as u32,
                    offset: self.word(e, offset)?,
                    size: self.word(e, size)?,
                })
            })
            .collect()
    }

    /// The entries of a header table, each at least `min` bytes. (Extended
    /// numbering, for more than 65279 entries, is not supported: kdf's files
    /// never need it.)
    fn table(&self, fields: &TableFields, min: u64, what: &str) -> Result<Vec<&'a [u8]>> {
        let offset = self.word(self.bytes, fields.offset)?;
        let entsize = self.uint(self.bytes, fields.entsize, 2)?;
        let count = self.uint(self.bytes, fields.count, 2)?;
        if count == 0 {
            return Ok(Vec::new());
        }
        if entsize < min {
            bail!("{what} entries of {entsize} bytes are too small (at least {min})");
        }
        let table = self
            .slice(self.bytes, offset, entsize * count)
            .with_context(|| format!("failed to read the {what} table"))?;
        Ok(table.chunks_exact(entsize as usize).collect())
    }

    /// `len` bytes of `bytes` at `at`, or an error naming what is missing.
    fn slice<'b>(&self, bytes: &'b [u8], at: u64, len: u64) -> Result<&'b [u8]> {
        let end = at.checked_add(len);
        let range = usize::try_from(at).ok().zip(end.and_then(|e| usize::try_from(e).ok()));
        range.and_then(|(start, end)| bytes.get(start..end)).with_context(|| {
            format!("truncated ELF: {len} bytes at offset {at:#x} lie past the end ({} bytes)", bytes.len())
        })
    }

    /// An unsigned integer of `size` bytes (2, 4 or 8) in the file's byte order.
    fn uint(&self, bytes: &[u8], at: u64, size: u64) -> Result<u64> {
        let b = self.slice(bytes, at, size)?;
        let fold = |v: u64, &byte: &u8| v << 8 | u64::from(byte);
        Ok(match self.endian {
            Endian::Little => b.iter().rev().fold(0, fold),
            Endian::Big => b.iter().fold(0, fold),
        })
    }

    /// An address or offset: 4 bytes in ELF32, 8 in ELF64.
    fn word(&self, bytes: &[u8], at: u64) -> Result<u64> {
        self.uint(bytes, at, if self.class == Class::Elf64 { 8 } else { 4 })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An ELF of `class` and `endian` for x86_64 (or `machine`) with the given
    /// program headers (type and contents) and sections (name and contents).
    pub fn build(
        class: Class,
        endian: Endian,
        machine: u16,
        segments: &[(u32, &[u8])],
        sections: &[(&str, &[u8])],
    ) -> Vec<u8> {
        let wide = class == Class::Elf64;
        let (header, phent, shent) = if wide { (64, 56, 64) } else { (52, 32, 40) };
        let put = |b: &mut Vec<u8>, at: usize, size: usize, v: u64| {
            let bytes = v.to_be_bytes();
            let mut field = bytes[8 - size..].to_vec();
            if endian == Endian::Little {
                field.reverse();
            }
            b[at..at + size].copy_from_slice(&field);
        };
        let word = if wide { 8 } else { 4 };
        let mut e = vec![0u8; header + phent * segments.len()];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = if wide { 2 } else { 1 };
        e[5] = if endian == Endian::Little { 1 } else { 2 };
        e[6] = 1;
        put(&mut e, 18, 2, machine.into());
        let (phoff, phentsize, phnum) = if wide { (0x20, 0x36, 0x38) } else { (0x1c, 0x2a, 0x2c) };
        put(&mut e, phoff, word, header as u64);
        put(&mut e, phentsize, 2, phent as u64);
        put(&mut e, phnum, 2, segments.len() as u64);
        for (i, (kind, data)) in segments.iter().enumerate() {
            let ph = header + i * phent;
            let (offset, size, align) = if wide { (8, 32, 48) } else { (4, 16, 28) };
            let at = e.len() as u64;
            put(&mut e, ph, 4, (*kind).into());
            put(&mut e, ph + offset, word, at);
            put(&mut e, ph + size, word, data.len() as u64);
            put(&mut e, ph + align, word, 4);
            e.extend_from_slice(data);
        }
        if sections.is_empty() {
            return e;
        }
        // Section 0 is the null section; the name table comes last.
        let mut names = vec![0u8];
        let mut headers = vec![(0, 0, 0u64, 0u64)];
        for (name, data) in sections.iter().copied().chain([(".shstrtab", &[][..])]) {
            headers.push((names.len() as u64, 1u64, e.len() as u64, data.len() as u64));
            names.extend_from_slice(name.as_bytes());
            names.push(0);
            e.extend_from_slice(data);
        }
        let last = headers.len() - 1;
        headers[last] = (headers[last].0, 3, e.len() as u64, names.len() as u64);
        e.extend_from_slice(&names);
        let (shoff, shentsize, shnum, shstrndx) =
            if wide { (0x28, 0x3a, 0x3c, 0x3e) } else { (0x20, 0x2e, 0x30, 0x32) };
        let at = e.len();
        put(&mut e, shoff, word, at as u64);
        put(&mut e, shentsize, 2, shent as u64);
        put(&mut e, shnum, 2, headers.len() as u64);
        put(&mut e, shstrndx, 2, last as u64);
        e.resize(at + shent * headers.len(), 0);
        for (i, (name, kind, offset, size)) in headers.into_iter().enumerate() {
            let sh = at + i * shent;
            let (off_at, size_at) = if wide { (0x18, 0x20) } else { (0x10, 0x14) };
            put(&mut e, sh, 4, name);
            put(&mut e, sh + 4, 4, kind);
            put(&mut e, sh + off_at, word, offset);
            put(&mut e, sh + size_at, word, size);
        }
        e
    }

    /// A PT_NOTE segment's bytes: `(name, type, descriptor)` each, little-endian.
    pub fn note_segment(notes: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut seg = Vec::new();
        for (name, kind, desc) in notes {
            let name = format!("{name}\0");
            seg.extend_from_slice(&(name.len() as u32).to_le_bytes());
            seg.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            seg.extend_from_slice(&kind.to_le_bytes());
            seg.extend_from_slice(name.as_bytes());
            seg.resize(seg.len().next_multiple_of(4), 0);
            seg.extend_from_slice(desc);
            seg.resize(seg.len().next_multiple_of(4), 0);
        }
        seg
    }

    fn sample(class: Class, endian: Endian) -> Vec<u8> {
        let notes = note_segment(&[("Xen", 18, &[1, 2, 3, 4]), ("GNU", 3, b"abcdefgh")]);
        build(
            class,
            endian,
            EM_X86_64,
            &[(1, b"code"), (PT_NOTE, &notes), (PT_INTERP, b"/lib/ld.so\0")],
            &[(".text", b"code"), (".modinfo", b"license=GPL\0depends=a,b\0")],
        )
    }

    #[test]
    fn reads_class_byte_order_and_machine() {
        for (class, endian) in [(Class::Elf64, Endian::Little), (Class::Elf32, Endian::Big)] {
            let bytes = sample(class, endian);
            let elf = Elf::parse(&bytes).unwrap();
            assert_eq!((elf.class, elf.endian, elf.machine), (class, endian, EM_X86_64));
        }
        assert_eq!(machine_name(183), Some("aarch64"));
    }

    #[test]
    fn finds_notes_interpreters_and_sections_in_either_class() {
        for class in [Class::Elf64, Class::Elf32] {
            let bytes = sample(class, Endian::Little);
            let elf = Elf::parse(&bytes).unwrap();
            let notes = elf.notes().unwrap();
            assert_eq!(notes[0], Note { name: b"Xen", kind: 18, desc: &[1, 2, 3, 4] });
            assert_eq!(notes[1], Note { name: b"GNU", kind: 3, desc: b"abcdefgh" });
            assert!(elf.has_interpreter().unwrap());
            assert_eq!(elf.interpreter().unwrap(), Some(&b"/lib/ld.so"[..]));
            assert_eq!(elf.section(".modinfo").unwrap(), Some(&b"license=GPL\0depends=a,b\0"[..]));
            assert_eq!(elf.section(".text").unwrap(), Some(&b"code"[..]));
            assert_eq!(elf.section(".data").unwrap(), None);
        }
        let bare = build(Class::Elf64, Endian::Little, EM_X86_64, &[(1, b"code")], &[]);
        let elf = Elf::parse(&bare).unwrap();
        assert!(!elf.has_interpreter().unwrap());
        assert_eq!(elf.interpreter().unwrap(), None);
        assert!(elf.notes().unwrap().is_empty());
        assert_eq!(elf.section(".modinfo").unwrap(), None);
    }

    #[test]
    fn this_test_binary_reads_as_a_dynamic_x86_64_elf64() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let elf = Elf::parse(&exe).unwrap();
        assert_eq!((elf.class, elf.endian), (Class::Elf64, Endian::Little));
        assert!(elf.has_interpreter().unwrap(), "cargo test binaries link glibc dynamically");
        assert!(elf.section(".text").unwrap().is_some_and(|t| !t.is_empty()));
    }

    #[test]
    fn every_truncation_is_an_error_or_an_answer_never_a_panic() {
        let bytes = sample(Class::Elf64, Endian::Little);
        for len in 0..bytes.len() {
            let Ok(elf) = Elf::parse(&bytes[..len]) else { continue };
            let _ = (elf.segments(), elf.notes(), elf.interpreter(), elf.section(".modinfo"));
        }
        assert!(Elf::parse(&bytes[..40]).is_err(), "a header cut short");
        assert!(Elf::parse(&bytes[..100]).unwrap().segments().is_err(), "program headers cut short");
    }

    #[test]
    fn garbage_and_huge_offsets_are_errors() {
        assert!(Elf::parse(b"#!/bin/sh\n").is_err());
        assert!(Elf::parse(b"\x7fELF\x03\x01").is_err(), "unknown class");
        // Deterministic noise after a valid identification, and every field at its maximum.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for fill in [None, Some(0xff)] {
            for _ in 0..200 {
                let mut bytes = b"\x7fELF\x02\x01\x01".to_vec();
                bytes.extend((0..300).map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    fill.unwrap_or(seed as u8)
                }));
                let elf = Elf::parse(&bytes).unwrap();
                let _ = (elf.notes(), elf.has_interpreter(), elf.section(".modinfo"));
            }
        }
        let mut huge = vec![0xffu8; 64];
        huge[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let elf = Elf::parse(&huge).unwrap();
        assert!(elf.segments().is_err() && elf.section(".modinfo").is_err());
    }

    #[test]
    fn a_note_longer_than_its_segment_is_an_error() {
        let mut notes = note_segment(&[("Xen", 18, &[1, 2, 3, 4])]);
        notes[4..8].copy_from_slice(&u32::MAX.to_le_bytes()); // descsz
        let bytes = build(Class::Elf64, Endian::Little, EM_X86_64, &[(PT_NOTE, &notes)], &[]);
        assert!(Elf::parse(&bytes).unwrap().notes().is_err());
    }
}
