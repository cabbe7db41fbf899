//! The compressions kdf unpacks, in one place: a bzImage's payload (told by
//! its magic) and modules (`.ko.xz`, `.ko.zst`, `.ko.gz`, told by suffix).

use std::io::Read;

use anyhow::{bail, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Gzip,
    Xz,
    /// The legacy `.lzma` ("alone") format.
    Lzma,
    Zstd,
    /// bzip2, lz4, lzo: recognised (to name them), not decompressed.
    Bzip2,
    Lz4,
    Lzo,
}

/// Module file suffixes and their formats.
const SUFFIXES: &[(&str, Format)] = &[(".xz", Format::Xz), (".zst", Format::Zstd), (".gz", Format::Gzip)];

impl Format {
    /// The format whose magic bytes start `data`. LZMA has no real magic: its
    /// usual properties byte (0x5d) and dictionary size stand in, which is
    /// enough where the data is known to be compressed (a kernel payload).
    pub fn from_magic(data: &[u8]) -> Option<Format> {
        const MAGIC: &[(&[u8], Format)] = &[
            (&[0x1f, 0x8b], Format::Gzip),
            (b"\xfd7zXZ\0", Format::Xz),
            (&[0x28, 0xb5, 0x2f, 0xfd], Format::Zstd),
            (&[0x5d, 0x00, 0x00], Format::Lzma),
            (b"BZh", Format::Bzip2),
            (&[0x02, 0x21, 0x4c, 0x18], Format::Lz4),
            (&[0x89, 0x4c, 0x5a, 0x4f], Format::Lzo),
        ];
        MAGIC.iter().find(|(magic, _)| data.starts_with(magic)).map(|&(_, f)| f)
    }

    /// The format a file name's suffix names, and the name without it:
    /// `fuse.ko.xz` -> `(Xz, "fuse.ko")`.
    pub fn from_suffix(name: &str) -> Option<(Format, &str)> {
        SUFFIXES.iter().find_map(|&(suffix, f)| name.strip_suffix(suffix).map(|stem| (f, stem)))
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Gzip => "gzip",
            Format::Xz => "xz",
            Format::Lzma => "lzma",
            Format::Zstd => "zstd",
            Format::Bzip2 => "bzip2",
            Format::Lz4 => "lz4",
            Format::Lzo => "lzo",
        }
    }
}

/// Decompresses the first stream of `data` (anything after it, like the
/// kernel's appended size, is ignored).
pub fn decompress(format: Format, data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4));
    match format {
        Format::Gzip => flate2::read::GzDecoder::new(data).read_to_end(&mut out).map(drop)?,
        // The kernel's xz payload uses the x86 BCJ filter: liblzma handles it.
        Format::Xz => lzma_stream(data, xz2::stream::Stream::new_stream_decoder(u64::MAX, 0)?, &mut out)?,
        Format::Lzma => lzma_stream(data, xz2::stream::Stream::new_lzma_decoder(u64::MAX)?, &mut out)?,
        // One frame: a kernel's zstd payload is followed by its size too.
        Format::Zstd => {
            zstd::stream::read::Decoder::new(data)?.single_frame().read_to_end(&mut out).map(drop)?
        }
        Format::Bzip2 | Format::Lz4 | Format::Lzo => bail!("kdf cannot decompress {}", format.name()),
    }
    // The xz decoder reserves in 16 MiB steps; a module is kept for a while.
    out.shrink_to_fit();
    Ok(out)
}

/// Decodes one liblzma stream and stops at its end: the kernel appends the
/// uncompressed size after it, which a reader-style decoder rejects as a
/// corrupt second stream.
fn lzma_stream(mut data: &[u8], mut stream: xz2::stream::Stream, out: &mut Vec<u8>) -> std::io::Result<()> {
    loop {
        if out.capacity() - out.len() < 1 << 20 {
            out.reserve(16 << 20);
        }
        let (before, out_before) = (stream.total_in(), out.len());
        let status = stream
            .process_vec(data, out, xz2::stream::Action::Run)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let used = usize::try_from(stream.total_in() - before).unwrap_or(usize::MAX);
        data = data.get(used..).unwrap_or_default();
        match status {
            xz2::stream::Status::StreamEnd => return Ok(()),
            _ if stream.total_in() == before && out.len() == out_before => {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const DATA: &[u8] = b"an ELF, or a module, or anything else worth compressing twice twice twice";

    fn compressed(format: Format) -> Vec<u8> {
        match format {
            Format::Gzip => {
                let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                w.write_all(DATA).unwrap();
                w.finish().unwrap()
            }
            Format::Xz => {
                let mut w = xz2::write::XzEncoder::new(Vec::new(), 1);
                w.write_all(DATA).unwrap();
                w.finish().unwrap()
            }
            Format::Lzma => {
                let opts = xz2::stream::LzmaOptions::new_preset(1).unwrap();
                let mut w = xz2::write::XzEncoder::new_stream(
                    Vec::new(),
                    xz2::stream::Stream::new_lzma_encoder(&opts).unwrap(),
                );
                w.write_all(DATA).unwrap();
                w.finish().unwrap()
            }
            Format::Zstd => zstd::encode_all(DATA, 1).unwrap(),
            other => panic!("no encoder for {other:?}"),
        }
    }

    #[test]
    fn each_format_round_trips_and_is_told_by_its_magic() {
        for format in [Format::Gzip, Format::Xz, Format::Lzma, Format::Zstd] {
            let data = compressed(format);
            assert_eq!(Format::from_magic(&data), Some(format));
            assert_eq!(decompress(format, &data).unwrap(), DATA, "{format:?}");
        }
        assert_eq!(Format::from_magic(b"#!/bin/sh"), None);
    }

    #[test]
    fn module_suffixes_name_their_format() {
        assert_eq!(
            Format::from_suffix("kernel/fs/fuse/fuse.ko.xz"),
            Some((Format::Xz, "kernel/fs/fuse/fuse.ko"))
        );
        assert_eq!(Format::from_suffix("a.ko.zst"), Some((Format::Zstd, "a.ko")));
        assert_eq!(Format::from_suffix("a.ko.gz"), Some((Format::Gzip, "a.ko")));
        assert_eq!(Format::from_suffix("a.ko"), None);
    }

    /// The kernel appends the uncompressed size (`size_append`) to its payload.
    /// Regression: a zstd payload (`CONFIG_KERNEL_ZSTD`) failed with "Unknown
    /// frame descriptor", so kdf booted the slow bzImage instead of its vmlinux.
    #[test]
    fn trailing_bytes_after_the_stream_are_ignored() {
        for format in [Format::Gzip, Format::Xz, Format::Lzma, Format::Zstd] {
            let mut data = compressed(format);
            data.extend_from_slice(&(DATA.len() as u32).to_le_bytes());
            assert_eq!(decompress(format, &data).unwrap(), DATA, "{format:?}");
        }
    }

    #[test]
    fn corrupt_or_unsupported_data_is_an_error() {
        let mut xz = compressed(Format::Xz);
        xz.truncate(xz.len() / 2);
        assert!(decompress(Format::Xz, &xz).is_err());
        assert!(decompress(Format::Zstd, b"\x28\xb5\x2f\xfdgarbage").is_err());
        let err = decompress(Format::Bzip2, b"BZh91AY").unwrap_err();
        assert_eq!(err.to_string(), "kdf cannot decompress bzip2");
    }
}
