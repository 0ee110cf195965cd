//! Length-prefixed frames: `u32 BE length ‖ payload`.
//!
//! [`FrameDecoder`] takes bytes as they arrive (any chunking) and yields whole
//! frames. The length prefix is checked against the limit as soon as its 4
//! bytes are in, before any buffer is sized for the payload: a peer cannot
//! make the node allocate what its length field claims.

/// Hard cap of one frame's payload, bytes (DESIGN.md §6).
pub const MAX_FRAME_LEN: usize = 16 << 20;
/// Bytes of the length prefix.
pub const FRAME_HEADER_LEN: usize = 4;

/// A frame broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix exceeds the limit.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Claimed length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Appends `payload` as one frame to `out`.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    if payload.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len: payload.len(),
            max: MAX_FRAME_LEN,
        });
    }
    out.reserve(FRAME_HEADER_LEN + payload.len());
    // In range (≤ 16 MiB), so the cast cannot truncate.
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Buffer capacity a decoder keeps between frames (bytes); more is freed
/// once the buffer is empty.
pub const IDLE_CAPACITY: usize = 64 * 1024;

/// Incremental frame decoder.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(MAX_FRAME_LEN)
    }
}

impl FrameDecoder {
    /// A decoder refusing frames over `max` bytes (at most [`MAX_FRAME_LEN`]).
    pub fn new(max: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            max: max.min(MAX_FRAME_LEN),
        }
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Bytes of memory the decoder holds (its buffer's capacity).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends received bytes. The buffer grows with the data received,
    /// never ahead of it on a length field's word, and never past the
    /// frame being received (no doubling beyond it): one connection holds
    /// at most one maximum frame plus what arrived behind it.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        let need = self.buf.len() + data.len();
        if need > self.buf.capacity() {
            let mut target = need.max(self.buf.capacity().saturating_mul(2));
            if let Some(end) = self.frame_end() {
                target = target.min(end.max(need));
            }
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(data);
    }

    /// Where the frame being received ends in `buf`, once its length is
    /// known (and within the limit).
    fn frame_end(&self) -> Option<usize> {
        let prefix = self.buf.get(self.start..self.start + FRAME_HEADER_LEN)?;
        let mut len_bytes = [0u8; FRAME_HEADER_LEN];
        len_bytes.copy_from_slice(prefix);
        let len = u32::from_be_bytes(len_bytes) as usize;
        (len <= self.max).then_some(self.start + FRAME_HEADER_LEN + len)
    }

    /// The length announced by the frame being received, once its header
    /// has arrived (and within the limit).
    pub fn announced(&self) -> Option<usize> {
        self.frame_end()
            .map(|end| end - self.start - FRAME_HEADER_LEN)
    }

    /// Whether a frame has started and not completed.
    pub fn in_frame(&self) -> bool {
        self.buffered() > 0
    }

    /// The next complete frame's payload, `Ok(None)` if more bytes are needed.
    /// After an error the decoder is poisoned: the stream must be closed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let avail = &self.buf[self.start..];
        let Some(prefix) = avail.get(..FRAME_HEADER_LEN) else {
            if avail.is_empty() && self.buf.capacity() > IDLE_CAPACITY {
                // Idle: a large frame's buffer is given back.
                self.buf = Vec::new();
                self.start = 0;
            }
            return Ok(None);
        };
        let mut len_bytes = [0u8; FRAME_HEADER_LEN];
        len_bytes.copy_from_slice(prefix);
        let len = u32::from_be_bytes(len_bytes) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        let Some(payload) = avail.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len) else {
            return Ok(None);
        };
        let frame = payload.to_vec();
        self.start += FRAME_HEADER_LEN + len;
        // Compact once the consumed prefix dominates the buffer.
        if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_every_chunking() {
        let mut wire = Vec::new();
        for p in [&b"hello"[..], b"", &[7u8; 300]] {
            encode_frame(p, &mut wire).expect("small");
        }
        for chunk in 1..wire.len() {
            let mut d = FrameDecoder::default();
            let mut got = Vec::new();
            for c in wire.chunks(chunk) {
                d.push(c);
                while let Some(f) = d.next_frame().expect("valid") {
                    got.push(f);
                }
            }
            assert_eq!(
                got,
                vec![b"hello".to_vec(), vec![], vec![7u8; 300]],
                "chunk {chunk}"
            );
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn oversized_length_prefix_is_refused_before_the_payload_arrives() {
        let mut d = FrameDecoder::default();
        d.push(&u32::MAX.to_be_bytes());
        assert_eq!(
            d.next_frame(),
            Err(FrameError::TooLarge {
                len: u32::MAX as usize,
                max: MAX_FRAME_LEN
            })
        );
        assert_eq!(d.buffered(), 4, "nothing allocated for the claimed payload");
    }

    #[test]
    fn truncated_frame_waits_for_more() {
        let mut wire = Vec::new();
        encode_frame(b"abcdef", &mut wire).expect("small");
        let mut d = FrameDecoder::default();
        d.push(&wire[..7]);
        assert_eq!(d.next_frame(), Ok(None));
        d.push(&wire[7..]);
        assert_eq!(d.next_frame(), Ok(Some(b"abcdef".to_vec())));
    }

    #[test]
    fn a_partial_frame_holds_no_more_than_the_frame_and_is_freed_after() {
        let len = 1 << 20;
        let mut d = FrameDecoder::default();
        d.push(&(len as u32).to_be_bytes());
        let chunk = [7u8; 1000];
        let mut sent = 0;
        while sent + chunk.len() < len {
            d.push(&chunk);
            sent += chunk.len();
            assert!(d.next_frame().expect("valid").is_none());
        }
        // Doubling growth would reach 2 MiB here.
        assert!(d.capacity() <= len + FRAME_HEADER_LEN, "{}", d.capacity());
        d.push(&vec![7u8; len - sent]);
        assert_eq!(d.next_frame().expect("valid").map(|f| f.len()), Some(len));
        assert!(d.next_frame().expect("valid").is_none());
        assert!(
            d.capacity() <= IDLE_CAPACITY,
            "{} kept when idle",
            d.capacity()
        );
    }
}
