//! SMTP replies (RFC 5321 §4.2): `ddd SP text CRLF`, multi-line with
//! `ddd-text` on every line but the last. [`write_reply`] encodes,
//! [`ReplyParser`] decodes incrementally (for the client machine and the
//! spec-vector runner).

use alloc::string::String;
use alloc::vec::Vec;
use bytes::BytesMut;

/// One complete reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text of each line (without code, separator or CRLF).
    pub lines: Vec<String>,
}

impl Reply {
    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3xx (go ahead: 354 for DATA, 334 for AUTH).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4xx.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// The text of the lines joined by `\n`.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// Appends a one-line reply. `enhanced` (RFC 3463, e.g. `"2.1.0"`) is
/// written after the code when given.
pub fn write_reply(out: &mut BytesMut, code: u16, enhanced: Option<&str>, text: &str) {
    write_code(out, code, b' ');
    if let Some(e) = enhanced {
        out.extend_from_slice(e.as_bytes());
        out.extend_from_slice(b" ");
    }
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends a multi-line reply: `lines` in order, the last with a space.
pub fn write_multiline<'a>(
    out: &mut BytesMut,
    code: u16,
    lines: impl ExactSizeIterator<Item = &'a str>,
) {
    let n = lines.len();
    for (i, l) in lines.enumerate() {
        write_code(out, code, if i + 1 == n { b' ' } else { b'-' });
        out.extend_from_slice(l.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

fn write_code(out: &mut BytesMut, code: u16, sep: u8) {
    let code = code.min(999);
    out.extend_from_slice(&[
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
        sep,
    ]);
}

/// What is wrong with a reply a server sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// Not `ddd`, `ddd SP text` or `ddd-text`.
    #[error("malformed reply line")]
    Malformed,
    /// The lines of one reply carry different codes.
    #[error("reply lines with different codes")]
    CodeMismatch,
    /// A line or the reply is longer than the limit.
    #[error("reply longer than the limit")]
    TooLong,
}

/// Incremental reply decoder; keeps the partial reply between calls.
#[derive(Clone, Debug, Default)]
pub struct ReplyParser {
    lines: Vec<String>,
    code: Option<u16>,
    size: usize,
}

/// The most bytes one reply may take (all lines).
pub const MAX_REPLY: usize = 64 * 1024;

impl ReplyParser {
    /// A fresh parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one line (with or without CRLF). Returns the reply it
    /// completes, if any.
    pub fn line(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let line = super::command::trim_line_end(line);
        self.size += line.len() + 2;
        if self.size > MAX_REPLY {
            return Err(ReplyError::TooLong);
        }
        let (code, more, text) = split_line(line)?;
        if let Some(c) = self.code {
            if c != code {
                return Err(ReplyError::CodeMismatch);
            }
        }
        self.code = Some(code);
        self.lines.push(String::from_utf8_lossy(text).into_owned());
        if more {
            return Ok(None);
        }
        let lines = core::mem::take(&mut self.lines);
        self.code = None;
        self.size = 0;
        Ok(Some(Reply { code, lines }))
    }
}

fn split_line(line: &[u8]) -> Result<(u16, bool, &[u8]), ReplyError> {
    let digits = line.get(..3).ok_or(ReplyError::Malformed)?;
    if !digits.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&digits[0]) {
        return Err(ReplyError::Malformed);
    }
    let code = digits
        .iter()
        .fold(0u16, |a, d| a * 10 + u16::from(d - b'0'));
    match line.get(3) {
        None => Ok((code, false, &[])),
        Some(b' ') => Ok((code, false, &line[4..])),
        Some(b'-') => Ok((code, true, &line[4..])),
        Some(_) => Err(ReplyError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_and_parse() {
        let mut b = BytesMut::new();
        write_multiline(
            &mut b,
            250,
            ["foo.com greets bar.com", "8BITMIME", "HELP"].into_iter(),
        );
        write_reply(&mut b, 550, Some("5.1.1"), "No such user");
        let mut p = ReplyParser::new();
        let mut got = Vec::new();
        for l in b[..].split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
            if let Some(r) = p.line(l).unwrap() {
                got.push(r);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].code, 250);
        assert_eq!(got[0].lines, ["foo.com greets bar.com", "8BITMIME", "HELP"]);
        assert_eq!(got[1].lines, ["5.1.1 No such user"]);
        assert_eq!(
            p.line(b"250"),
            Ok(Some(Reply {
                code: 250,
                lines: alloc::vec![String::new()]
            }))
        );
        assert_eq!(p.line(b"25x ok"), Err(ReplyError::Malformed));
        assert!(p.line(b"250-a").unwrap().is_none());
        assert_eq!(p.line(b"251 b"), Err(ReplyError::CodeMismatch));
    }
}
