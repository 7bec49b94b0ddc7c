//! Packet framing: `[u32 LE length][i32 LE seqno][payload]`, with a sequence number per direction
//! that starts at 0 and grows by one per packet.

/// Largest payload a packet may carry (16 MiB, inclusive).
pub const MAX_PACKET_LEN: usize = 1 << 24;
/// Smallest payload a packet may carry (a constructor id).
pub const MIN_PACKET_LEN: usize = 4;
/// Bytes before the payload: length and sequence number.
pub const FRAME_HEADER_LEN: usize = 8;

/// Why a packet could not be framed or unframed. Every variant is a protocol violation that ends
/// the connection.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The payload is longer than [`MAX_PACKET_LEN`].
    #[error("packet of {0} bytes is larger than the 16 MiB limit")]
    TooLarge(usize),
    /// The payload is shorter than [`MIN_PACKET_LEN`].
    #[error("packet of {0} bytes is shorter than the 4-byte minimum")]
    TooSmall(usize),
    /// The sequence number is not the next one expected.
    #[error("packet sequence number {got}, expected {expected}")]
    BadSeqno {
        /// The sequence number that should have come.
        expected: i32,
        /// The sequence number that came.
        got: i32,
    },
}

fn check_len(len: usize) -> Result<(), FrameError> {
    if len < MIN_PACKET_LEN {
        Err(FrameError::TooSmall(len))
    } else if len > MAX_PACKET_LEN {
        Err(FrameError::TooLarge(len))
    } else {
        Ok(())
    }
}

/// Frames outgoing payloads, numbering them.
#[derive(Debug, Default, Clone)]
pub struct FrameEncoder {
    next_seqno: i32,
}

impl FrameEncoder {
    /// An encoder whose first packet gets sequence number 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The sequence number the next packet will carry.
    pub fn next_seqno(&self) -> i32 {
        self.next_seqno
    }

    /// Appends one framed packet carrying `payload` to `out`.
    pub fn encode(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        check_len(payload.len())?;
        out.reserve(FRAME_HEADER_LEN + payload.len());
        // check_len bounds the length by 2^24, so it fits in a u32.
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.next_seqno.to_le_bytes());
        out.extend_from_slice(payload);
        self.next_seqno = self.next_seqno.wrapping_add(1);
        Ok(())
    }

    /// Appends one framed packet whose payload `write` appends to `out` directly, so the payload
    /// is never copied. On error `out` is left as it was and no sequence number is used up.
    pub fn encode_with(
        &mut self,
        out: &mut Vec<u8>,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), FrameError> {
        let start = out.len();
        out.extend_from_slice(&[0u8; 4]);
        out.extend_from_slice(&self.next_seqno.to_le_bytes());
        write(out);
        let len = out.len() - start - FRAME_HEADER_LEN;
        if let Err(error) = check_len(len) {
            out.truncate(start);
            return Err(error);
        }
        out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
        self.next_seqno = self.next_seqno.wrapping_add(1);
        Ok(())
    }
}

/// Reassembles packets from a byte stream that arrives in arbitrary pieces.
///
/// Memory grows only with bytes actually received: a length header is checked as soon as it
/// arrives and nothing is reserved for the payload it announces.
#[derive(Debug, Default, Clone)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    /// Start of the unread part of `buffer`; consumed bytes are dropped lazily so that decoding
    /// many small packets does not move the tail each time.
    read_offset: usize,
    expected_seqno: i32,
}

impl FrameDecoder {
    /// A decoder expecting sequence number 0 first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes received but not yet returned as packets.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.read_offset
    }

    /// The sequence number the next packet must carry.
    pub fn expected_seqno(&self) -> i32 {
        self.expected_seqno
    }

    /// Adds received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.read_offset == self.buffer.len() {
            self.buffer.clear();
            self.read_offset = 0;
        } else if self.read_offset > 0 && self.read_offset >= self.buffer.len() / 2 {
            // At least half the buffer is dead: moving the live half costs no more than the
            // bytes consumed since the last move, so the total work stays linear.
            self.buffer.drain(..self.read_offset);
            self.read_offset = 0;
        }
        self.buffer.extend_from_slice(data);
    }

    /// The next complete payload, `None` if more bytes are needed. Errors are permanent: the
    /// same error comes back on every later call.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let unread = &self.buffer[self.read_offset..];
        let Some(len_bytes) = unread.get(..4) else {
            return Ok(None);
        };
        let mut raw = [0u8; 4];
        raw.copy_from_slice(len_bytes);
        let len = u32::from_le_bytes(raw) as usize;
        check_len(len)?;
        let Some(seqno_bytes) = unread.get(4..FRAME_HEADER_LEN) else {
            return Ok(None);
        };
        raw.copy_from_slice(seqno_bytes);
        let seqno = i32::from_le_bytes(raw);
        if seqno != self.expected_seqno {
            return Err(FrameError::BadSeqno {
                expected: self.expected_seqno,
                got: seqno,
            });
        }
        let Some(payload) = unread.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len) else {
            return Ok(None);
        };
        let payload = payload.to_vec();
        self.read_offset += FRAME_HEADER_LEN + len;
        self.expected_seqno = self.expected_seqno.wrapping_add(1);
        if self.read_offset == self.buffer.len() {
            self.buffer.clear();
            self.read_offset = 0;
        }
        Ok(Some(payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_byte_by_byte() {
        let mut encoder = FrameEncoder::new();
        let mut wire = Vec::new();
        encoder.encode(b"abcd", &mut wire).unwrap();
        encoder
            .encode_with(&mut wire, |out| out.extend_from_slice(b"efghij"))
            .unwrap();
        assert_eq!(encoder.next_seqno(), 2);
        let mut decoder = FrameDecoder::new();
        let mut frames = Vec::new();
        for byte in wire {
            decoder.push(&[byte]);
            while let Some(frame) = decoder.next_frame().unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames, vec![b"abcd".to_vec(), b"efghij".to_vec()]);
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn encode_with_rolls_back_on_error() {
        let mut encoder = FrameEncoder::new();
        let mut wire = vec![1, 2, 3];
        let result = encoder.encode_with(&mut wire, |out| out.push(1));
        assert_eq!(result, Err(FrameError::TooSmall(1)));
        assert_eq!(wire, vec![1, 2, 3]);
        assert_eq!(encoder.next_seqno(), 0);
    }

    #[test]
    fn bad_length_is_rejected_from_the_header_alone() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&((MAX_PACKET_LEN as u32) + 1).to_le_bytes());
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::TooLarge(MAX_PACKET_LEN + 1))
        );
    }
}
