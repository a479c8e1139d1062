//! Netstrings (D. J. Bernstein, cr.yp.to/proto/netstrings.txt):
//! `12:hello world!,`.
//!
//! The grammar is kept strictly: the length is a non-empty run of ASCII
//! digits with no leading zero (only the empty string's length starts
//! with `0`), then `:`, the data, and a mandatory `,`. The length is
//! checked against the limit digit by digit, before any data is read.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use twill_core::{LimitExceeded, LimitKind};

use super::Codec;
use crate::error::FramingError;

/// The default maximum data length, as Twisted's
/// `NetstringReceiver.MAX_LENGTH`.
pub const DEFAULT_MAX: usize = 99_999;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading the length: `digits` digits seen so far, worth `value`.
    Length { digits: usize, value: usize },
    /// The header (`digits` + `:`) is `header` bytes; the data is `len`.
    Data { header: usize, len: usize },
}

/// The netstring codec.
#[derive(Clone, Debug)]
pub struct Netstring {
    max: usize,
    state: State,
}

impl Default for Netstring {
    fn default() -> Self {
        Netstring::new()
    }
}

impl Netstring {
    /// Maximum data length [`DEFAULT_MAX`].
    pub fn new() -> Self {
        Netstring {
            max: DEFAULT_MAX,
            state: State::Length {
                digits: 0,
                value: 0,
            },
        }
    }

    /// The maximum data length.
    pub fn max_length(mut self, max: usize) -> Self {
        self.max = max;
        self
    }

    fn too_long(&self) -> FramingError {
        FramingError::Limit(LimitExceeded {
            kind: LimitKind::MessageSize,
            max: self.max,
        })
    }
}

impl Netstring {
    /// Takes the next complete frame off the front of `buf`, or `Ok(None)`
    /// if more bytes are needed (see [`Codec::decode`]).
    ///
    /// # Errors
    /// The peer broke the framing or exceeded the limit.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        if let State::Length {
            mut digits,
            mut value,
        } = self.state
        {
            loop {
                let Some(&b) = buf.get(digits) else {
                    self.state = State::Length { digits, value };
                    return Ok(None);
                };
                match b {
                    b'0'..=b'9' => {
                        if digits == 1 && buf[0] == b'0' {
                            return Err(FramingError::LeadingZero);
                        }
                        value = value
                            .saturating_mul(10)
                            .saturating_add(usize::from(b - b'0'));
                        digits += 1;
                        if value > self.max {
                            return Err(self.too_long());
                        }
                    }
                    b':' if digits > 0 => {
                        self.state = State::Data {
                            header: digits + 1,
                            len: value,
                        };
                        break;
                    }
                    _ => return Err(FramingError::BadLength),
                }
            }
        }
        let State::Data { header, len } = self.state else {
            return Ok(None);
        };
        let total = header + len + 1;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        if buf[header + len] != b',' {
            return Err(FramingError::MissingComma);
        }
        buf.advance(header);
        let frame = buf.split_to(len).freeze();
        buf.advance(1);
        self.reset();
        Ok(Some(frame))
    }

    /// Appends `frame`, framed, to `out` (see [`Codec::encode`]).
    ///
    /// # Errors
    /// The frame cannot be framed; `out` is unchanged.
    pub fn encode(&self, frame: &[u8], out: &mut BytesMut) -> Result<(), FramingError> {
        if frame.len() > self.max {
            return Err(self.too_long());
        }
        // At most 20 digits for a 64-bit length.
        let mut digits = [0u8; 20];
        let mut n = frame.len();
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        out.reserve(digits.len() - i + frame.len() + 2);
        out.put_slice(&digits[i..]);
        out.put_u8(b':');
        out.put_slice(frame);
        out.put_u8(b',');
        Ok(())
    }
}

impl Codec for Netstring {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        self.decode(buf)
    }

    fn encode(&self, frame: &[u8], out: &mut BytesMut) -> Result<(), FramingError> {
        self.encode(frame, out)
    }

    fn reset(&mut self) {
        self.state = State::Length {
            digits: 0,
            value: 0,
        };
    }

    fn max_frame(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_one(c: &mut Netstring, input: &[u8]) -> Result<Option<Bytes>, FramingError> {
        c.decode(&mut BytesMut::from(input))
    }

    #[test]
    fn the_spec_examples() {
        let mut c = Netstring::new();
        assert_eq!(
            decode_one(&mut c, b"12:hello world!,").unwrap().unwrap(),
            "hello world!"
        );
        assert_eq!(decode_one(&mut c, b"0:,").unwrap().unwrap(), "");
        let mut out = BytesMut::new();
        c.encode(b"hello world!", &mut out).unwrap();
        c.encode(b"", &mut out).unwrap();
        assert_eq!(&out[..], b"12:hello world!,0:,");
    }

    #[test]
    fn each_error() {
        let e = |input: &[u8]| decode_one(&mut Netstring::new(), input);
        assert_eq!(e(b"01:a,"), Err(FramingError::LeadingZero));
        assert_eq!(e(b"00:,"), Err(FramingError::LeadingZero));
        assert_eq!(e(b":a,"), Err(FramingError::BadLength));
        assert_eq!(e(b"1a:a,"), Err(FramingError::BadLength));
        assert_eq!(e(b"+1:a,"), Err(FramingError::BadLength));
        assert_eq!(e(b" 1:a,"), Err(FramingError::BadLength));
        assert_eq!(e(b"1:ab"), Err(FramingError::MissingComma));
        assert_eq!(e(b"1:a;"), Err(FramingError::MissingComma));
        let limited = decode_one(&mut Netstring::new().max_length(10), b"11");
        assert_eq!(
            limited,
            Err(FramingError::Limit(LimitExceeded {
                kind: LimitKind::MessageSize,
                max: 10
            }))
        );
        // A huge length is refused at its digits, without overflow.
        assert!(matches!(
            e(b"99999999999999999999999999999"),
            Err(FramingError::Limit(_))
        ));
        assert!(matches!(
            Netstring::new()
                .max_length(2)
                .encode(b"abc", &mut BytesMut::new()),
            Err(FramingError::Limit(_))
        ));
    }

    #[test]
    fn incremental() {
        let mut c = Netstring::new();
        let mut buf = BytesMut::new();
        for &b in b"5:hello,3:ab" {
            buf.put_u8(b);
            if let Some(f) = c.decode(&mut buf).unwrap() {
                assert_eq!(f, "hello");
            }
        }
        assert_eq!(&buf[..], b"3:ab");
        assert_eq!(c.state, State::Data { header: 2, len: 3 });
    }
}
