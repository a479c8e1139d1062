//! Line framing for IRC: lines end in LF with an optional CR before it
//! (RFC 2812 says CR LF; every server accepts a bare LF). The reader finds
//! line ends in the bytes a driver hands over without copying complete
//! lines, keeps only a partial last line, and never rescans it.

use bytes::BytesMut;

use super::message::MAX_LINE;
use crate::error::LineError;

/// An incremental line splitter with a length limit.
#[derive(Clone, Debug)]
pub struct LineReader {
    partial: BytesMut,
    max: usize,
    /// An overlong line was reported: drop bytes up to its LF, so its tail
    /// is never read as a line of its own.
    skipping: bool,
}

impl Default for LineReader {
    fn default() -> Self {
        LineReader::new(MAX_LINE)
    }
}

/// One line found by [`LineReader::next_line`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line (without CR LF), borrowed from the input.
    Borrowed(&'a [u8]),
    /// A complete line that began in an earlier input.
    Joined(bytes::Bytes),
}

impl Line<'_> {
    /// The line's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Line::Borrowed(b) => b,
            Line::Joined(b) => b,
        }
    }

    /// The line as `Bytes` (a copy for a borrowed line).
    pub fn into_bytes(self) -> bytes::Bytes {
        match self {
            Line::Borrowed(b) => bytes::Bytes::copy_from_slice(b),
            Line::Joined(b) => b,
        }
    }
}

impl LineReader {
    /// A reader of lines of at most `max` bytes (without the line end).
    pub fn new(max: usize) -> Self {
        LineReader {
            partial: BytesMut::new(),
            max,
            skipping: false,
        }
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes of an unfinished line held from earlier inputs.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Forgets any partial line.
    pub fn clear(&mut self) {
        self.partial = BytesMut::new();
        self.skipping = false;
    }

    /// The next complete line of `input` from `*pos`, advancing `*pos`
    /// past it. At the end of `input` a partial line is kept (and `*pos`
    /// becomes `input.len()`) and `Ok(None)` returned.
    ///
    /// # Errors
    /// A line over the limit (as soon as its partial length proves it);
    /// the rest of that line, up to its LF, is then skipped, so reading
    /// can go on with the next line.
    pub fn next_line<'a>(
        &mut self,
        input: &'a [u8],
        pos: &mut usize,
    ) -> Result<Option<Line<'a>>, LineError> {
        if self.skipping {
            let rest = input.get(*pos..).unwrap_or_default();
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    *pos += i + 1;
                    self.skipping = false;
                }
                None => {
                    *pos = input.len();
                    return Ok(None);
                }
            }
        }
        let rest = input.get(*pos..).unwrap_or_default();
        match memchr::memchr(b'\n', rest) {
            Some(i) => {
                *pos += i + 1;
                let line = &rest[..i];
                if self.partial.is_empty() {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.len() > self.max {
                        return Err(LineError { max: self.max });
                    }
                    Ok(Some(Line::Borrowed(line)))
                } else {
                    self.partial.extend_from_slice(line);
                    let mut whole = core::mem::take(&mut self.partial);
                    if whole.last() == Some(&b'\r') {
                        whole.truncate(whole.len() - 1);
                    }
                    if whole.len() > self.max {
                        return Err(LineError { max: self.max });
                    }
                    Ok(Some(Line::Joined(whole.freeze())))
                }
            }
            None => {
                *pos = input.len();
                // One byte of slack: a CR that may be followed by LF.
                if self.partial.len() + rest.len() > self.max + 1 {
                    self.clear();
                    self.skipping = true;
                    return Err(LineError { max: self.max });
                }
                self.partial.extend_from_slice(rest);
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(r: &mut LineReader, input: &[u8]) -> Vec<Vec<u8>> {
        let mut pos = 0;
        let mut out = Vec::new();
        while let Some(l) = r.next_line(input, &mut pos).unwrap() {
            out.push(l.as_bytes().to_vec());
        }
        out
    }

    #[test]
    fn splits_any_chunking() {
        let wire = b"NICK a\r\nUSER a 0 * :A\nPING x\r\n";
        for cut in 0..wire.len() {
            let mut r = LineReader::default();
            let mut got = all(&mut r, &wire[..cut]);
            got.extend(all(&mut r, &wire[cut..]));
            assert_eq!(
                got,
                vec![
                    b"NICK a".to_vec(),
                    b"USER a 0 * :A".to_vec(),
                    b"PING x".to_vec()
                ]
            );
        }
    }

    #[test]
    fn limit() {
        let mut r = LineReader::new(4);
        let mut pos = 0;
        assert!(r.next_line(b"abcd\r\n", &mut pos).unwrap().is_some());
        let mut pos = 0;
        assert!(r.next_line(b"abcdef", &mut pos).is_err());
        // The tail of the long line is skipped, the next line is read.
        let mut pos = 0;
        assert_eq!(
            r.next_line(b"gh\nok\n", &mut pos).unwrap(),
            Some(Line::Borrowed(b"ok"))
        );
        let mut pos = 0;
        assert!(r.next_line(b"abcde\n", &mut pos).is_err());
    }
}
