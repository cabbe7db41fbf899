//! Little-endian integers and length-prefixed byte strings, the building blocks of
//! every message.

use std::fmt;

/// Appends values to a byte buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(v as u8)
    }

    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `u32` length followed by the bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let len = u32::try_from(b.len()).expect("byte string longer than 4 GiB");
        self.u32(len);
        self.buf.extend_from_slice(b);
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// A `u32` count followed by each item.
    pub fn list<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Self, &T)) -> &mut Self {
        let len = u32::try_from(items.len()).expect("list longer than 4 G items");
        self.u32(len);
        for item in items {
            each(self, item);
        }
        self
    }

    /// Appends raw bytes with no length prefix (the rest of a frame).
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// A message that does not decode; names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed message: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Takes values off the front of a byte slice.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError("bad bool")),
        }
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    pub fn string(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| DecodeError("string is not UTF-8"))
    }

    pub fn list<T>(
        &mut self,
        mut each: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let len = self.u32()? as usize;
        // Every item takes at least one byte: refuse counts the buffer cannot hold
        // before allocating for them.
        if len > self.buf.len() {
            return Err(DecodeError("list count exceeds message"));
        }
        (0..len).map(|_| each(self)).collect()
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Fails unless every byte was read: trailing garbage means a version skew.
    pub fn end(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_primitive() {
        let mut w = Writer::new();
        w.u8(7).bool(true).u16(0xbeef).u32(0xdead_beef).i32(-5).u64(u64::MAX);
        w.bytes(b"a\0b").str("h\u{e9}").list(&[1u32, 2], |w, v| {
            w.u32(*v);
        });
        let buf = w.finish();
        let mut r = Reader::new(&buf);
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.bool(), Ok(true));
        assert_eq!(r.u16(), Ok(0xbeef));
        assert_eq!(r.u32(), Ok(0xdead_beef));
        assert_eq!(r.i32(), Ok(-5));
        assert_eq!(r.u64(), Ok(u64::MAX));
        assert_eq!(r.bytes(), Ok(&b"a\0b"[..]));
        assert_eq!(r.string().as_deref(), Ok("h\u{e9}"));
        assert_eq!(r.list(|r| r.u32()), Ok(vec![1, 2]));
        assert_eq!(r.end(), Ok(()));
    }

    #[test]
    fn integers_are_little_endian() {
        let mut w = Writer::new();
        w.u32(1);
        assert_eq!(w.finish(), [1, 0, 0, 0]);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut w = Writer::new();
        w.bytes(b"hello");
        let buf = w.finish();
        assert_eq!(Reader::new(&buf[..6]).bytes(), Err(DecodeError("truncated")));
        assert_eq!(Reader::new(&buf[..2]).u32(), Err(DecodeError("truncated")));
    }

    #[test]
    fn huge_list_count_is_refused_before_allocating() {
        let buf = u32::MAX.to_le_bytes();
        let err = Reader::new(&buf).list(|r| r.u8()).unwrap_err();
        assert_eq!(err, DecodeError("list count exceeds message"));
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let buf = [1u8, 2];
        let mut r = Reader::new(&buf);
        r.u8().unwrap();
        assert_eq!(r.end(), Err(DecodeError("trailing bytes")));
    }

    #[test]
    fn bad_bool_and_bad_utf8_are_errors() {
        assert!(Reader::new(&[2]).bool().is_err());
        let mut w = Writer::new();
        w.bytes(&[0xff]);
        assert!(Reader::new(&w.finish()).string().is_err());
    }
}
