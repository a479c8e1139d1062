//! Replies (RFC 959 §4.2): a three-digit code, then `SP text CRLF` for a
//! single line, or `-text CRLF`, any lines, and a last line starting with
//! the same code and `SP`.
//!
//! [`encode`] writes one; [`ReplyParser`] reads them incrementally from a
//! byte stream, remembering how far it scanned so a reply arriving a byte
//! at a time is never rescanned.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Buf, BytesMut};

use crate::error::ReplyError;

/// One reply: its code and its text lines (without the code, separator
/// and line endings; continuation lines verbatim).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code, 100–599.
    pub code: u16,
    /// The text: one line for a single-line reply; for a multi-line reply
    /// the first line's text, the middle lines as sent and the last line's
    /// text.
    pub lines: Vec<String>,
}

impl Reply {
    /// The first digit: 1 preliminary, 2 completion, 3 intermediate,
    /// 4 transient failure, 5 permanent failure.
    pub fn class(&self) -> u8 {
        (self.code / 100) as u8
    }

    /// The first line's text.
    pub fn text(&self) -> &str {
        self.lines.first().map_or("", String::as_str)
    }

    /// A canonical one-line form for tests and vectors: the code, a space,
    /// the lines joined by `\n`.
    pub fn canonical(&self) -> String {
        let mut s = alloc::format!("{} ", self.code);
        for (i, l) in self.lines.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            s.push_str(l);
        }
        s
    }
}

/// Appends a reply to `out`. `text` may hold several lines separated by
/// `\n`: they become a multi-line reply whose middle lines are indented by
/// one space (so none can be mistaken for the last line, RFC 959 §4.2).
/// CR and NUL in the text are replaced by spaces: a file name echoed in a
/// reply can never inject a line.
pub fn encode(code: u16, text: &str, out: &mut BytesMut) {
    let code = code.clamp(100, 599);
    let mut digits = [0u8; 3];
    digits[0] = b'0' + (code / 100) as u8;
    digits[1] = b'0' + (code / 10 % 10) as u8;
    digits[2] = b'0' + (code % 10) as u8;
    let lines: Vec<&str> = text.split('\n').collect();
    let last = lines.len() - 1;
    for (i, line) in lines.iter().enumerate() {
        if i == 0 || i == last {
            out.extend_from_slice(&digits);
            out.extend_from_slice(if i == last { b" " } else { b"-" });
        } else {
            out.extend_from_slice(b" ");
        }
        for &b in line.as_bytes() {
            out.extend_from_slice(&[if b == b'\r' || b == 0 { b' ' } else { b }]);
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends a multi-line reply whose middle lines are written exactly as
/// given (FEAT's ` FEATURE` lines, MLST's ` facts; path`, STAT's listing),
/// each already starting with a space.
pub fn encode_multi(code: u16, first: &str, middle: &[&str], last: &str, out: &mut BytesMut) {
    let code = code.clamp(100, 599);
    let head = alloc::format!("{code}-{first}\r\n");
    out.extend_from_slice(head.as_bytes());
    for m in middle {
        let clean: String = m
            .chars()
            .map(|c| {
                if c == '\r' || c == '\n' || c == '\0' {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        out.extend_from_slice(clean.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let tail = alloc::format!("{code} {last}\r\n");
    out.extend_from_slice(tail.as_bytes());
}

/// Limits of [`ReplyParser`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Longest line, ending excluded.
    pub max_line: usize,
    /// Most lines in one multi-line reply.
    pub max_lines: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits {
            max_line: 8192,
            max_lines: 10_000,
        }
    }
}

/// Incremental reply parser.
#[derive(Clone, Debug, Default)]
pub struct ReplyParser {
    limits: ReplyLimits,
    /// Bytes at the front of the buffer already searched for LF.
    scanned: usize,
    /// A multi-line reply in progress: its code and lines so far.
    open: Option<(u16, Vec<String>)>,
}

fn code_of(line: &[u8]) -> Option<u16> {
    match line {
        [a @ b'1'..=b'5', b @ b'0'..=b'9', c @ b'0'..=b'9', ..] => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

impl ReplyParser {
    /// A parser with the given limits.
    pub fn new(limits: ReplyLimits) -> Self {
        ReplyParser {
            limits,
            ..ReplyParser::default()
        }
    }

    /// Whether a multi-line reply is half read.
    pub fn in_reply(&self) -> bool {
        self.open.is_some()
    }

    /// Takes the next complete reply off the front of `buf`; `Ok(None)`
    /// when more bytes are needed.
    ///
    /// # Errors
    /// A first line without a valid code, a line or a reply over the
    /// limits. The stream cannot be resynchronised after an error.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>, ReplyError> {
        loop {
            let from = self.scanned.min(buf.len());
            let Some(i) = memchr::memchr(b'\n', &buf[from..]) else {
                self.scanned = buf.len();
                if buf.len() > self.limits.max_line.saturating_add(1) {
                    return Err(ReplyError::LineTooLong);
                }
                return Ok(None);
            };
            let lf = from + i;
            self.scanned = 0;
            let end = if lf > 0 && buf[lf - 1] == b'\r' {
                lf - 1
            } else {
                lf
            };
            if end > self.limits.max_line {
                return Err(ReplyError::LineTooLong);
            }
            let line = &buf[..end];
            let text_of = |t: &[u8]| String::from_utf8_lossy(t).into_owned();
            let done = match self.open.take() {
                None => {
                    let code = code_of(line).ok_or(ReplyError::BadCode)?;
                    match line.get(3) {
                        None => Some(Reply {
                            code,
                            lines: alloc::vec![String::new()],
                        }),
                        Some(b' ') => Some(Reply {
                            code,
                            lines: alloc::vec![text_of(&line[4..])],
                        }),
                        Some(b'-') => {
                            self.open = Some((code, alloc::vec![text_of(&line[4..])]));
                            None
                        }
                        Some(_) => return Err(ReplyError::BadCode),
                    }
                }
                Some((code, mut lines)) => {
                    let is_last =
                        code_of(line) == Some(code) && matches!(line.get(3), None | Some(b' '));
                    if is_last {
                        lines.push(text_of(line.get(4..).unwrap_or(b"")));
                        Some(Reply { code, lines })
                    } else {
                        if lines.len() >= self.limits.max_lines {
                            return Err(ReplyError::TooManyLines);
                        }
                        lines.push(text_of(line));
                        self.open = Some((code, lines));
                        None
                    }
                }
            };
            buf.advance(lf + 1);
            if let Some(r) = done {
                return Ok(Some(r));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8]) -> Result<Vec<Reply>, ReplyError> {
        let mut p = ReplyParser::default();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(r) = p.decode(&mut buf)? {
            out.push(r);
        }
        Ok(out)
    }

    #[test]
    fn single_and_multi_line() {
        let r = all(b"220 ready\r\n123-First line\r\nSecond line\r\n  234 A line beginning with numbers\r\n123 The last line\r\n").unwrap();
        assert_eq!(r[0].canonical(), "220 ready");
        assert_eq!(
            r[1].lines,
            [
                "First line",
                "Second line",
                "  234 A line beginning with numbers",
                "The last line"
            ]
        );
        assert_eq!(all(b"2x0 no\r\n"), Err(ReplyError::BadCode));
    }

    #[test]
    fn encode_round_trips_and_indents() {
        let mut out = BytesMut::new();
        encode(211, "Features:\n200 not a last line\nEnd", &mut out);
        assert_eq!(
            &out[..],
            b"211-Features:\r\n 200 not a last line\r\n211 End\r\n"
        );
        let r = all(&out).unwrap();
        assert_eq!(r[0].lines, ["Features:", " 200 not a last line", "End"]);
        out.clear();
        encode(550, "a\rb\0c", &mut out);
        assert_eq!(&out[..], b"550 a b c\r\n");
    }

    #[test]
    fn limits() {
        let mut p = ReplyParser::new(ReplyLimits {
            max_line: 10,
            max_lines: 2,
        });
        let mut b = BytesMut::from(&b"200 0123456789abc"[..]);
        assert_eq!(p.decode(&mut b), Err(ReplyError::LineTooLong));
        let mut p = ReplyParser::new(ReplyLimits {
            max_line: 10,
            max_lines: 2,
        });
        let mut b = BytesMut::from(&b"200-a\r\nb\r\nc\r\nd\r\n"[..]);
        assert_eq!(p.decode(&mut b), Err(ReplyError::TooManyLines));
    }
}
