//! Incremental frame parsing for readers that get bytes in arbitrary chunks
//! (kdf-init's poll loop reads whatever the port has).

use crate::codec::DecodeError;
use crate::MAX_FRAME;

/// Collects bytes and hands out complete frames.
#[derive(Debug, Default)]
pub struct FrameBuffer {
    buf: Vec<u8>,
}

impl FrameBuffer {
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame as `(tag, payload)`, `Ok(None)` if more bytes are
    /// needed, or an error for a frame longer than [`MAX_FRAME`].
    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, DecodeError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_le_bytes(self.buf[..4].try_into().expect("4 bytes")) as usize;
        if len > MAX_FRAME {
            return Err(DecodeError("frame exceeds the size limit"));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let tag = self.buf[4];
        let payload = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Ok(Some((tag, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ToGuest;

    #[test]
    fn frames_split_anywhere_come_out_whole_and_in_order() {
        let mut stream = ToGuest::Stdin(b"hello".to_vec()).encode();
        stream.extend(ToGuest::Signal(2).encode());
        stream.extend(ToGuest::StdinEof.encode());
        for split in 0..stream.len() {
            let mut fb = FrameBuffer::default();
            let mut got = Vec::new();
            for chunk in [&stream[..split], &stream[split..]] {
                fb.extend(chunk);
                while let Some((tag, payload)) = fb.next_frame().unwrap() {
                    got.push(ToGuest::decode(tag, &payload).unwrap());
                }
            }
            assert_eq!(got, [ToGuest::Stdin(b"hello".to_vec()), ToGuest::Signal(2), ToGuest::StdinEof]);
        }
    }

    #[test]
    fn oversized_length_is_an_error() {
        let mut fb = FrameBuffer::default();
        fb.extend(&[0xff, 0xff, 0xff, 0xff, 1]);
        assert!(fb.next_frame().is_err());
    }
}
