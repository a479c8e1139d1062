//! Lines, like Twisted's `LineReceiver`: frames end with LF (a CR before
//! it is stripped) or, in strict mode, with CRLF.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use twill_core::{LimitExceeded, LimitKind};

use super::Codec;
use crate::error::FramingError;

/// The default maximum line length, as Twisted's `LineReceiver.MAX_LENGTH`.
pub const DEFAULT_MAX_LINE: usize = 16_384;

/// Which bytes end a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEnding {
    /// A line ends at LF; a CR right before it is stripped. Encoding
    /// appends LF (or CRLF with [`Lines::send_crlf`]).
    Lf,
    /// A line ends at CRLF only; a bare LF is part of the line. Encoding
    /// appends CRLF.
    CrLf,
}

/// The line codec. Lines are returned without their ending.
#[derive(Clone, Debug)]
pub struct Lines {
    ending: LineEnding,
    send_crlf: bool,
    max: usize,
    /// Bytes at the front of the buffer already searched for LF.
    scanned: usize,
}

impl Default for Lines {
    fn default() -> Self {
        Lines::new()
    }
}

impl Lines {
    /// Lenient lines (LF, optional CR), sent with LF; maximum
    /// [`DEFAULT_MAX_LINE`].
    pub fn new() -> Self {
        Lines {
            ending: LineEnding::Lf,
            send_crlf: false,
            max: DEFAULT_MAX_LINE,
            scanned: 0,
        }
    }

    /// Strict CRLF lines (a bare LF is data), sent with CRLF.
    pub fn crlf() -> Self {
        Lines {
            ending: LineEnding::CrLf,
            send_crlf: true,
            ..Lines::new()
        }
    }

    /// The maximum line length, ending excluded.
    pub fn max_length(mut self, max: usize) -> Self {
        self.max = max;
        self
    }

    /// In lenient mode, end encoded lines with CRLF instead of LF (the
    /// usual "be liberal in what you accept" setting of text protocols).
    pub fn send_crlf(mut self, yes: bool) -> Self {
        if self.ending == LineEnding::Lf {
            self.send_crlf = yes;
        }
        self
    }

    /// The decoding mode.
    pub fn ending(&self) -> LineEnding {
        self.ending
    }

    fn too_long(&self) -> FramingError {
        FramingError::Limit(LimitExceeded {
            kind: LimitKind::LineLength,
            max: self.max,
        })
    }
}

impl Lines {
    /// Takes the next complete frame off the front of `buf`, or `Ok(None)`
    /// if more bytes are needed (see [`Codec::decode`]).
    ///
    /// # Errors
    /// The peer broke the framing or exceeded the limit.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        // A buffer shorter than the scan mark means the caller replaced it.
        let mut from = self.scanned.min(buf.len());
        loop {
            let Some(i) = memchr::memchr(b'\n', &buf[from..]) else {
                self.scanned = buf.len();
                // Too long once even a CR-then-LF ending cannot save it.
                let n = buf.len();
                if n > self.max.saturating_add(1)
                    || (n == self.max.saturating_add(1) && buf[n - 1] != b'\r')
                {
                    return Err(self.too_long());
                }
                return Ok(None);
            };
            let lf = from + i;
            let cr = lf > 0 && buf[lf - 1] == b'\r';
            let end = match self.ending {
                LineEnding::Lf if cr => lf - 1,
                LineEnding::Lf => lf,
                LineEnding::CrLf if cr => lf - 1,
                LineEnding::CrLf => {
                    // A bare LF is data; keep looking.
                    from = lf + 1;
                    continue;
                }
            };
            if end > self.max {
                return Err(self.too_long());
            }
            let line = buf.split_to(end).freeze();
            buf.advance(lf + 1 - end);
            self.scanned = 0;
            return Ok(Some(line));
        }
    }

    /// Hands every complete line in `buf` to `each` as a borrowed slice
    /// (without its ending) and removes them from `buf`; returns how many.
    ///
    /// This is the batch form of [`decode`](Self::decode) for parsers that
    /// read a line and keep only what they need (a command, a few fields):
    /// one `memchr` pass over the buffer and no reference count per line.
    /// The partial line left at the end is remembered as scanned.
    ///
    /// # Errors
    /// A line (complete or partial) over the limit; the lines before it
    /// were handed over and removed.
    pub fn decode_each(
        &mut self,
        buf: &mut BytesMut,
        mut each: impl FnMut(&[u8]),
    ) -> Result<usize, FramingError> {
        let from = self.scanned.min(buf.len());
        let mut start = 0;
        let mut count = 0;
        let mut err = None;
        for lf in memchr::memchr_iter(b'\n', &buf[from..]).map(|i| from + i) {
            let cr = lf > start && buf[lf - 1] == b'\r';
            let end = match self.ending {
                LineEnding::Lf if cr => lf - 1,
                LineEnding::Lf => lf,
                LineEnding::CrLf if cr => lf - 1,
                // A bare LF is data in strict CRLF mode.
                LineEnding::CrLf => continue,
            };
            if end - start > self.max {
                err = Some(self.too_long());
                break;
            }
            each(&buf[start..end]);
            count += 1;
            start = lf + 1;
        }
        buf.advance(start);
        self.scanned = 0;
        if let Some(e) = err {
            return Err(e);
        }
        // The same bound on the partial line as `decode` applies.
        let n = buf.len();
        if n > self.max.saturating_add(1)
            || (n == self.max.saturating_add(1) && buf[n - 1] != b'\r')
        {
            return Err(self.too_long());
        }
        self.scanned = n;
        Ok(count)
    }

    /// Appends `frame`, framed, to `out` (see [`Codec::encode`]).
    ///
    /// # Errors
    /// The frame cannot be framed; `out` is unchanged.
    pub fn encode(&self, frame: &[u8], out: &mut BytesMut) -> Result<(), FramingError> {
        if frame.len() > self.max {
            return Err(self.too_long());
        }
        match self.ending {
            LineEnding::Lf => {
                if memchr::memchr(b'\n', frame).is_some() {
                    return Err(FramingError::ContainsDelimiter);
                }
                // "x\r" + LF would read back as "x"; + CRLF reads back right.
                if !self.send_crlf && frame.last() == Some(&b'\r') {
                    return Err(FramingError::TrailingCr);
                }
            }
            LineEnding::CrLf => {
                if memchr::memmem::find(frame, b"\r\n").is_some() {
                    return Err(FramingError::ContainsDelimiter);
                }
            }
        }
        out.reserve(frame.len() + 2);
        out.put_slice(frame);
        if self.send_crlf {
            out.put_slice(b"\r\n");
        } else {
            out.put_u8(b'\n');
        }
        Ok(())
    }
}

impl Codec for Lines {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        self.decode(buf)
    }

    fn encode(&self, frame: &[u8], out: &mut BytesMut) -> Result<(), FramingError> {
        self.encode(frame, out)
    }

    fn reset(&mut self) {
        self.scanned = 0;
    }

    fn max_frame(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_each_matches_decode() {
        for ending in [Lines::new(), Lines::crlf()] {
            let input = b"a\r\nbb\ncc\r\n\r\nd\ne";
            let (frames, _, rest) = decode_all(&mut ending.clone(), input);
            let mut seen = Vec::new();
            let mut c = ending.clone();
            let mut buf = BytesMut::new();
            // Byte at a time, to exercise the remembered scan position.
            for b in input {
                buf.extend_from_slice(&[*b]);
                c.decode_each(&mut buf, |l| seen.push(Bytes::copy_from_slice(l)))
                    .unwrap();
            }
            assert_eq!(seen, frames);
            assert_eq!(buf.len(), rest);
        }
        let mut c = Lines::new().max_length(3);
        let mut buf = BytesMut::from(&b"ok\ntoolong\nx"[..]);
        let mut seen = 0;
        assert!(c.decode_each(&mut buf, |_| seen += 1).is_err());
        assert_eq!(seen, 1);
    }

    fn decode_all(c: &mut Lines, input: &[u8]) -> (Vec<Bytes>, Result<(), FramingError>, usize) {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match c.decode(&mut buf) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => return (out, Ok(()), buf.len()),
                Err(e) => return (out, Err(e), buf.len()),
            }
        }
    }

    #[test]
    fn lf_and_crlf_lenient() {
        let (lines, r, rest) = decode_all(&mut Lines::new(), b"a\r\nb\n\nc\rd\npart");
        assert_eq!(lines, vec!["a", "b", "", "c\rd"]);
        assert_eq!(r, Ok(()));
        assert_eq!(rest, 4);
    }

    #[test]
    fn strict_crlf_keeps_bare_lf() {
        let (lines, r, rest) = decode_all(&mut Lines::crlf(), b"a\nb\r\nc\n");
        assert_eq!(lines, vec!["a\nb"]);
        assert_eq!(r, Ok(()));
        assert_eq!(rest, 2);
    }

    #[test]
    fn too_long_complete_line() {
        let mut c = Lines::new().max_length(3);
        let (lines, r, _) = decode_all(&mut c, b"abc\nabcd\n");
        assert_eq!(lines, vec!["abc"]);
        assert_eq!(
            r,
            Err(FramingError::Limit(LimitExceeded {
                kind: LimitKind::LineLength,
                max: 3
            }))
        );
    }

    #[test]
    fn too_long_detected_before_the_delimiter() {
        let mut c = Lines::new().max_length(3);
        let mut buf = BytesMut::from(&b"abc"[..]);
        assert_eq!(c.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"\r");
        // "abc\r" may still be "abc" + CRLF.
        assert_eq!(c.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"x");
        assert!(matches!(c.decode(&mut buf), Err(FramingError::Limit(_))));
        let mut c = Lines::new().max_length(3);
        let mut buf = BytesMut::from(&b"abcd"[..]);
        assert!(matches!(c.decode(&mut buf), Err(FramingError::Limit(_))));
    }

    #[test]
    fn byte_at_a_time_does_not_rescan() {
        let mut c = Lines::new();
        let mut buf = BytesMut::new();
        for &b in b"hello" {
            buf.put_u8(b);
            assert_eq!(c.decode(&mut buf), Ok(None));
            assert_eq!(c.scanned, buf.len());
        }
        buf.put_u8(b'\n');
        assert_eq!(c.decode(&mut buf).unwrap().unwrap(), "hello");
        assert_eq!(c.scanned, 0);
    }

    #[test]
    fn encode_refuses_injection() {
        let mut out = BytesMut::new();
        let lf = Lines::new();
        assert_eq!(
            lf.encode(b"a\nb", &mut out),
            Err(FramingError::ContainsDelimiter)
        );
        assert_eq!(lf.encode(b"a\r", &mut out), Err(FramingError::TrailingCr));
        let crlf = Lines::crlf();
        assert_eq!(
            crlf.encode(b"a\r\nb", &mut out),
            Err(FramingError::ContainsDelimiter)
        );
        assert!(matches!(
            Lines::new().max_length(2).encode(b"abc", &mut out),
            Err(FramingError::Limit(_))
        ));
        assert!(out.is_empty());
        crlf.encode(b"a\nb\r", &mut out).unwrap();
        lf.encode(b"x", &mut out).unwrap();
        Lines::new()
            .send_crlf(true)
            .encode(b"y\r", &mut out)
            .unwrap();
        assert_eq!(&out[..], b"a\nb\r\r\nx\ny\r\r\n");
    }
}
