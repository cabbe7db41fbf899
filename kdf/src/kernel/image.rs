//! Recognising kernel images (x86 bzImage, ELF `vmlinux`, arm64 `Image`
//! plain or gzip'd as Debian's `vmlinuz`), their architecture and release
//! string, and extracting the `vmlinux` inside a bzImage so it can be
//! booted through its PVH entry (under TCG, decompressing a bzImage costs more
//! than the rest of the boot).

use anyhow::{bail, Context, Result};

use crate::arch::Arch;
use crate::compress::{self, Format};
use crate::elf::Elf;

/// What a kernel file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BzImage,
    Elf,
    /// arm64's `Image` (arch/arm64/boot/Image), `gzip`'d as `Image.gz`.
    Arm64Image {
        gzip: bool,
    },
}

/// arm64's boot header: "ARM\x64" at offset 56 (Documentation/arch/arm64/booting.rst).
const ARM64_MAGIC: (usize, &[u8]) = (56, b"ARM\x64");

fn is_arm64_image(bytes: &[u8]) -> bool {
    bytes.get(ARM64_MAGIC.0..ARM64_MAGIC.0 + 4) == Some(ARM64_MAGIC.1)
}

/// The bzImage's boot-protocol header ("HdrS" at 0x202), an ELF, or an arm64
/// Image, also inside gzip (only its head is decompressed here).
pub fn kind(bytes: &[u8]) -> Option<Kind> {
    if bytes.starts_with(b"\x7fELF") {
        Some(Kind::Elf)
    } else if bytes.len() > 0x250 && &bytes[0x202..0x206] == b"HdrS" && bytes[0x1fe..0x200] == [0x55, 0xaa] {
        Some(Kind::BzImage)
    } else if is_arm64_image(bytes) {
        Some(Kind::Arm64Image { gzip: false })
    } else if Format::from_magic(bytes) == Some(Format::Gzip) && is_arm64_image(&gunzip_head(bytes, 64)) {
        Some(Kind::Arm64Image { gzip: true })
    } else {
        None
    }
}

/// Up to `len` bytes of a gzip stream's contents (fewer if it is damaged).
fn gunzip_head(bytes: &[u8], len: u64) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    let _ = flate2::read::GzDecoder::new(bytes).take(len).read_to_end(&mut out);
    out
}

/// The architecture a kernel of this kind runs on: an ELF's machine, else
/// the kind's.
pub fn arch(kind: Kind, bytes: &[u8]) -> Option<Arch> {
    match kind {
        Kind::BzImage => Some(Arch::X86_64),
        Kind::Arm64Image { .. } => Some(Arch::Arm64),
        Kind::Elf => Elf::parse(bytes).ok().and_then(|e| Arch::of_elf_machine(e.machine)),
    }
}

/// The release of any kind of image.
pub fn release(kind: Kind, bytes: &[u8]) -> Option<String> {
    match kind {
        Kind::BzImage => bzimage_release(bytes),
        Kind::Elf | Kind::Arm64Image { gzip: false } => elf_release(bytes),
        Kind::Arm64Image { gzip: true } => gunzip_release(bytes),
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The release (`uname -r`) a bzImage announces in its header's version string.
pub fn bzimage_release(b: &[u8]) -> Option<String> {
    let at = u16_at(b, 0x20e)? as usize;
    if at == 0 {
        return None;
    }
    let s = b.get(at + 0x200..)?;
    let end = s.iter().position(|&c| c == 0 || c == b' ')?;
    Some(String::from_utf8_lossy(&s[..end]).into_owned()).filter(|r| !r.is_empty())
}

/// The release in a gzip'd image's banner, decompressing only up to it (every
/// run reads it: all of Debian's arm64 `vmlinuz` took ~0.1 s).
fn gunzip_release(bytes: &[u8]) -> Option<String> {
    use std::io::Read;
    // Kept across chunks: more than the banner and its release.
    const KEEP: usize = 512;
    let mut gz = flate2::read::GzDecoder::new(bytes);
    let mut window = Vec::with_capacity(KEEP + (1 << 20));
    let mut chunk = vec![0; 1 << 20];
    loop {
        let n = gz.read(&mut chunk).ok()?;
        window.extend_from_slice(&chunk[..n]);
        // A banner cut off at the window's end has no terminator yet: it
        // is found whole once the next chunk is in.
        if let Some(release) = elf_release(&window) {
            return Some(release);
        }
        if n == 0 {
            return None;
        }
        let drop = window.len().saturating_sub(KEEP);
        window.drain(..drop);
    }
}

/// The release in an ELF's `Linux version X ...` banner.
pub fn elf_release(b: &[u8]) -> Option<String> {
    const BANNER: &[u8] = b"Linux version ";
    let at = b.windows(BANNER.len()).position(|w| w == BANNER)? + BANNER.len();
    let rest = &b[at..];
    let end = rest.iter().take(256).position(|&c| c == b' ' || c == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned()).filter(|r| !r.is_empty())
}

/// The compressed payload of a bzImage and its compression.
pub fn payload(b: &[u8]) -> Option<(&[u8], Format)> {
    let setup_sects = match b.get(0x1f1)? {
        0 => 4,
        n => *n as usize,
    };
    let start = (setup_sects + 1) * 512;
    let off = u32_at(b, 0x248)? as usize;
    let len = u32_at(b, 0x24c)? as usize;
    let data = b.get(start + off..start + off + len)?;
    Some((data, Format::from_magic(data)?))
}

/// Decompresses a bzImage payload into the `vmlinux` ELF it holds.
pub fn decompress(data: &[u8], format: Format) -> Result<Vec<u8>> {
    let out = compress::decompress(format, data)
        .with_context(|| format!("failed to decompress the kernel payload ({})", format.name()))?;
    if kind(&out) != Some(Kind::Elf) {
        bail!("the decompressed kernel payload is not an ELF file");
    }
    Ok(out)
}

/// Whether an ELF kernel has a PVH entry point (`XEN_ELFNOTE_PHYS32_ENTRY`),
/// which lets QEMU boot it directly with `-kernel vmlinux`.
pub fn has_pvh_note(elf: &[u8]) -> bool {
    const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
    let notes = Elf::parse(elf).and_then(|e| e.notes());
    notes.is_ok_and(|n| n.iter().any(|n| n.name == b"Xen" && n.kind == XEN_ELFNOTE_PHYS32_ENTRY))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal bzImage-shaped buffer: header fields, version string, payload.
    pub fn fake_bzimage(payload: &[u8], version: &str) -> Vec<u8> {
        let mut b = vec![0u8; 0x1000];
        b[0x1f1] = 1; // setup_sects: protected-mode code starts at 0x400
        b[0x1fe] = 0x55;
        b[0x1ff] = 0xaa;
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x20e..0x210].copy_from_slice(&0x300u16.to_le_bytes()); // version at 0x500
        b[0x500..0x500 + version.len()].copy_from_slice(version.as_bytes());
        // The payload starts 0x300 into the protected-mode code: at 0x700.
        b[0x248..0x24c].copy_from_slice(&0x300u32.to_le_bytes());
        b[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        b.truncate(0x700);
        b.extend_from_slice(payload);
        b
    }

    /// An x86_64 ELF64 with one PT_NOTE segment holding the given notes, and
    /// a version banner.
    pub fn fake_elf(notes: &[(&str, u32)]) -> Vec<u8> {
        use crate::elf::{tests, Class, Endian, EM_X86_64};
        let notes: Vec<(&str, u32, &[u8])> = notes.iter().map(|&(n, t)| (n, t, &[1, 2, 3, 4][..])).collect();
        let seg = tests::note_segment(&notes);
        let mut e = tests::build(Class::Elf64, Endian::Little, EM_X86_64, &[(4, &seg)], &[]);
        e.extend_from_slice(b"..Linux version 6.9.0-kdf (me@host) #1 SMP\0");
        e
    }

    /// An arm64 Image's head (the magic at 56) and a banner.
    pub fn fake_arm64_image() -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[56..60].copy_from_slice(b"ARM\x64");
        b.extend_from_slice(b"..Linux version 6.1.0-57-arm64 (debian-kernel@lists.debian.org) #1 SMP\0");
        b
    }

    #[test]
    fn recognises_arm64_images_plain_and_gzipd() {
        use std::io::Write;
        let image = fake_arm64_image();
        assert_eq!(kind(&image), Some(Kind::Arm64Image { gzip: false }));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&image).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(kind(&gz), Some(Kind::Arm64Image { gzip: true }));
        for k in [kind(&image).unwrap(), kind(&gz).unwrap()] {
            let bytes = if k == (Kind::Arm64Image { gzip: true }) { &gz } else { &image };
            assert_eq!(arch(k, bytes), Some(Arch::Arm64));
            assert_eq!(release(k, bytes).as_deref(), Some("6.1.0-57-arm64"));
        }
        let mut other = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        other.write_all(b"just some gzip'd text, not a kernel").unwrap();
        assert_eq!(kind(&other.finish().unwrap()), None);
        assert_eq!(kind(&image[..58]), None, "a cut header");
    }

    #[test]
    fn the_architecture_of_each_kind() {
        use crate::elf::{tests::build, Class, Endian, EM_AARCH64};
        assert_eq!(arch(Kind::BzImage, &fake_bzimage(b"x", "6.1")), Some(Arch::X86_64));
        assert_eq!(arch(Kind::Elf, &fake_elf(&[])), Some(Arch::X86_64));
        let arm_elf = build(Class::Elf64, Endian::Little, EM_AARCH64, &[(1, b"code")], &[]);
        assert_eq!(arch(Kind::Elf, &arm_elf), Some(Arch::Arm64));
        let riscv = build(Class::Elf64, Endian::Little, 243, &[(1, b"code")], &[]);
        assert_eq!(arch(Kind::Elf, &riscv), None);
    }

    #[test]
    fn recognises_elf_bzimage_and_garbage() {
        assert_eq!(kind(&fake_elf(&[])), Some(Kind::Elf));
        assert_eq!(kind(&fake_bzimage(b"x", "6.1.0")), Some(Kind::BzImage));
        assert_eq!(kind(b"#!/bin/sh\necho not a kernel\n"), None);
        assert_eq!(kind(&[0u8; 0x1000]), None);
    }

    #[test]
    fn reads_the_release_of_a_gzipd_image_across_chunk_boundaries() {
        use std::io::Write;
        for pad in [0, (1 << 20) - 20, (1 << 20) - 3, 3 << 20] {
            let mut image = vec![0u8; pad];
            image.extend_from_slice(b"Linux version 6.1.0-57-arm64 (debian-kernel@lists.debian.org)\0");
            image.resize(image.len() + 1000, 0);
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&image).unwrap();
            let gz = gz.finish().unwrap();
            assert_eq!(gunzip_release(&gz).as_deref(), Some("6.1.0-57-arm64"), "pad {pad}");
        }
        assert_eq!(gunzip_release(b"\x1f\x8b not gzip"), None);
    }

    #[test]
    fn reads_the_release_from_either_kind() {
        let bz = fake_bzimage(b"x", "6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP");
        assert_eq!(bzimage_release(&bz).as_deref(), Some("6.1.0-56-amd64"));
        assert_eq!(elf_release(&fake_elf(&[])).as_deref(), Some("6.9.0-kdf"));
    }

    #[test]
    fn extracts_a_gzip_payload_and_finds_the_pvh_note() {
        use std::io::Write;
        let elf = fake_elf(&[("Xen", 18), ("GNU", 3)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&elf).unwrap();
        let bz = fake_bzimage(&gz.finish().unwrap(), "6.1.0");
        let (data, comp) = payload(&bz).unwrap();
        assert_eq!(comp, Format::Gzip);
        let out = decompress(data, comp).unwrap();
        assert_eq!(out, elf);
        assert!(has_pvh_note(&out));
    }

    #[test]
    fn extracts_xz_and_zstd_payloads() {
        use std::io::Write;
        let elf = fake_elf(&[("Xen", 18)]);
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&elf).unwrap();
        let mut xz = xz.finish().unwrap();
        xz.extend_from_slice(&(elf.len() as u32).to_le_bytes()); // the kernel's size_append
        let bz = fake_bzimage(&xz, "6.1.0");
        let (data, comp) = payload(&bz).unwrap();
        assert_eq!((decompress(data, comp).unwrap(), comp), (elf.clone(), Format::Xz));

        let zst = zstd::encode_all(&elf[..], 1).unwrap();
        let bz = fake_bzimage(&zst, "6.1.0");
        let (data, comp) = payload(&bz).unwrap();
        assert_eq!((decompress(data, comp).unwrap(), comp), (elf, Format::Zstd));
    }

    /// Regression: Debian's xz payload (x86 BCJ, crc32, size appended) was
    /// rejected as "corrupt xz stream" by a reader-style decoder, so kdf booted
    /// the slow bzImage instead of the PVH vmlinux.
    #[test]
    fn kernel_style_xz_with_bcj_and_appended_size() {
        use xz2::stream::{Check, Filters, LzmaOptions, Stream};
        let elf = fake_elf(&[("Xen", 18)]);
        let mut filters = Filters::new();
        filters.x86().lzma2(&LzmaOptions::new_preset(6).unwrap());
        let mut enc = Stream::new_stream_encoder(&filters, Check::Crc32).unwrap();
        let mut xz = Vec::with_capacity(elf.len() + 4096);
        enc.process_vec(&elf, &mut xz, xz2::stream::Action::Finish).unwrap();
        xz.extend_from_slice(&(elf.len() as u32).to_le_bytes());
        let bz = fake_bzimage(&xz, "6.1.0");
        let (data, comp) = payload(&bz).unwrap();
        assert_eq!(decompress(data, comp).unwrap(), elf);
    }

    #[test]
    fn no_pvh_note_without_xen_phys32_entry() {
        assert!(!has_pvh_note(&fake_elf(&[("Xen", 17), ("Linux", 18)])));
        assert!(!has_pvh_note(b"\x7fELF short"));
        let pvh = fake_elf(&[("Xen", 18)]);
        assert!((0..130).all(|len| !has_pvh_note(&pvh[..len])), "the note lies at 120..140");
    }

    #[test]
    fn unknown_payload_is_none_and_odd_compressions_are_named() {
        assert!(payload(&fake_bzimage(b"\0\0\0\0", "6.1")).is_none());
        let bz = fake_bzimage(b"BZh91AY", "6.1");
        assert_eq!(payload(&bz).unwrap().1, Format::Bzip2);
        assert!(decompress(b"BZh", Format::Bzip2).is_err());
    }
}
