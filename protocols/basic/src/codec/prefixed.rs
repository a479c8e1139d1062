//! Length-prefixed messages, like Twisted's `Int8StringReceiver`,
//! `Int16StringReceiver` and `Int32StringReceiver`: a big-endian unsigned
//! length of 1, 2 or 4 bytes, then that many bytes of data.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use twill_core::{LimitExceeded, LimitKind};

use super::Codec;
use crate::error::FramingError;

/// The default maximum message size of the 32-bit prefix: 1 MiB.
pub const DEFAULT_MAX_U32: usize = 1024 * 1024;

/// The width of the length prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefix {
    /// One byte: up to 255.
    U8,
    /// Two bytes, big-endian: up to 65 535.
    U16,
    /// Four bytes, big-endian: up to 4 GiB − 1.
    U32,
}

impl Prefix {
    /// Bytes of the prefix.
    pub const fn width(self) -> usize {
        match self {
            Prefix::U8 => 1,
            Prefix::U16 => 2,
            Prefix::U32 => 4,
        }
    }

    /// The largest length the prefix can hold.
    pub const fn max_len(self) -> usize {
        match self {
            Prefix::U8 => u8::MAX as usize,
            Prefix::U16 => u16::MAX as usize,
            // Saturates on 16-bit targets.
            Prefix::U32 => {
                if usize::BITS >= 32 {
                    u32::MAX as usize
                } else {
                    usize::MAX
                }
            }
        }
    }
}

/// The length-prefixed codec.
#[derive(Clone, Debug)]
pub struct Prefixed {
    prefix: Prefix,
    max: usize,
}

impl Prefixed {
    /// A codec with `prefix`; the maximum is the prefix's own for `U8` and
    /// `U16` and [`DEFAULT_MAX_U32`] for `U32`.
    pub fn new(prefix: Prefix) -> Self {
        let max = match prefix {
            Prefix::U32 => DEFAULT_MAX_U32,
            p => p.max_len(),
        };
        Prefixed { prefix, max }
    }

    /// One-byte prefix.
    pub fn u8() -> Self {
        Prefixed::new(Prefix::U8)
    }

    /// Two-byte prefix.
    pub fn u16() -> Self {
        Prefixed::new(Prefix::U16)
    }

    /// Four-byte prefix, maximum 1 MiB.
    pub fn u32() -> Self {
        Prefixed::new(Prefix::U32)
    }

    /// The maximum message size (never more than the prefix can say).
    pub fn max_length(mut self, max: usize) -> Self {
        self.max = max.min(self.prefix.max_len());
        self
    }

    /// The prefix width.
    pub fn prefix(&self) -> Prefix {
        self.prefix
    }

    fn too_long(&self) -> FramingError {
        FramingError::Limit(LimitExceeded {
            kind: LimitKind::MessageSize,
            max: self.max,
        })
    }
}

impl Prefixed {
    /// Takes the next complete frame off the front of `buf`, or `Ok(None)`
    /// if more bytes are needed (see [`Codec::decode`]).
    ///
    /// # Errors
    /// The peer broke the framing or exceeded the limit.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        let w = self.prefix.width();
        if buf.len() < w {
            return Ok(None);
        }
        let len = buf[..w]
            .iter()
            .fold(0u64, |acc, b| acc << 8 | u64::from(*b));
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > self.max {
            return Err(self.too_long());
        }
        if buf.len() - w < len {
            buf.reserve(w + len - buf.len());
            return Ok(None);
        }
        buf.advance(w);
        Ok(Some(buf.split_to(len).freeze()))
    }

    /// Appends `frame`, framed, to `out` (see [`Codec::encode`]).
    ///
    /// # Errors
    /// The frame cannot be framed; `out` is unchanged.
    pub fn encode(&self, frame: &[u8], out: &mut BytesMut) -> Result<(), FramingError> {
        let len = frame.len();
        if len > self.prefix.max_len() {
            return Err(FramingError::PrefixOverflow {
                len,
                max: self.prefix.max_len(),
            });
        }
        if len > self.max {
            return Err(self.too_long());
        }
        out.reserve(self.prefix.width() + len);
        match self.prefix {
            Prefix::U8 => out.put_u8(len as u8),
            Prefix::U16 => out.put_u16(len as u16),
            Prefix::U32 => out.put_u32(len as u32),
        }
        out.put_slice(frame);
        Ok(())
    }
}

impl Codec for Prefixed {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        self.decode(buf)
    }

    fn encode(&self, frame: &[u8], out: &mut BytesMut) -> Result<(), FramingError> {
        self.encode(frame, out)
    }

    fn reset(&mut self) {}

    fn max_frame(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths() {
        for (c, wire) in [
            (Prefixed::u8(), &b"\x03abc"[..]),
            (Prefixed::u16(), &b"\x00\x03abc"[..]),
            (Prefixed::u32(), &b"\x00\x00\x00\x03abc"[..]),
        ] {
            let mut out = BytesMut::new();
            c.encode(b"abc", &mut out).unwrap();
            assert_eq!(&out[..], wire);
            let mut c = c;
            assert_eq!(c.decode(&mut out).unwrap().unwrap(), "abc");
            assert!(out.is_empty());
        }
    }

    #[test]
    fn limit_checked_at_the_prefix() {
        let mut c = Prefixed::u32();
        let mut buf = BytesMut::from(&b"\x00\x10\x00\x01"[..]);
        assert_eq!(
            c.decode(&mut buf),
            Err(FramingError::Limit(LimitExceeded {
                kind: LimitKind::MessageSize,
                max: DEFAULT_MAX_U32
            }))
        );
        let mut c = Prefixed::u8().max_length(2);
        assert!(matches!(
            c.decode(&mut BytesMut::from(&b"\x03"[..])),
            Err(FramingError::Limit(_))
        ));
    }

    #[test]
    fn encode_refuses_what_does_not_fit() {
        let mut out = BytesMut::new();
        assert_eq!(
            Prefixed::u8().encode(&[0; 256], &mut out),
            Err(FramingError::PrefixOverflow { len: 256, max: 255 })
        );
        assert!(matches!(
            Prefixed::u32().max_length(4).encode(b"12345", &mut out),
            Err(FramingError::Limit(_))
        ));
        assert!(out.is_empty());
        assert_eq!(Prefixed::u8().max_length(1000).max_frame(), 255);
    }

    #[test]
    fn partial_input_waits() {
        let mut c = Prefixed::u16();
        let mut buf = BytesMut::from(&b"\x00"[..]);
        assert_eq!(c.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"\x02a");
        assert_eq!(c.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"b\x00");
        assert_eq!(c.decode(&mut buf).unwrap().unwrap(), "ab");
        assert_eq!(&buf[..], b"\x00");
    }
}
