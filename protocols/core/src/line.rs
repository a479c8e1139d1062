//! Bounded line reading for the text protocols (SMTP, POP3, and the
//! IMAP/NNTP to come): commands and replies arrive as lines in reads of any
//! size, and a line may not grow past a limit.
//!
//! [`LineReader`] finds each line end with one `memchr` pass and hands a
//! line that lies wholly in the input out as a borrowed slice; only a line
//! split across reads is held (up to the limit). A line over the limit is
//! reported once, at the earliest byte that proves it, and the rest of it is
//! discarded up to its LF, so memory stays bounded whatever the peer sends.

use alloc::vec::Vec;
use core::ops::Deref;

/// Strips one trailing CRLF or LF.
pub fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A whole line, its ending (LF, usually CRLF) included.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// The line lies wholly in the input just offered.
    Borrowed(&'a [u8]),
    /// The line began in an earlier input; give it back with
    /// [`LineReader::recycle`] to reuse its buffer.
    Joined(Vec<u8>),
}

impl Deref for Line<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Line::Borrowed(b) => b,
            Line::Joined(v) => v,
        }
    }
}

/// What [`LineReader::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// A complete line within the limit.
    Line(Line<'a>),
    /// A line over the limit: reported once; its remaining bytes up to the
    /// LF are discarded by later calls.
    TooLong,
    /// The input was used up without completing a line (it is held, or
    /// discarded if it belongs to an over-long line).
    Partial,
}

/// Splits input into LF-terminated lines of at most `max` octets (ending
/// included).
#[derive(Clone, Debug)]
pub struct LineReader {
    held: Vec<u8>,
    max: usize,
    discarding: bool,
}

impl LineReader {
    /// A reader of lines of at most `max` octets, the line end included.
    pub fn new(max: usize) -> Self {
        LineReader {
            held: Vec::new(),
            max,
            discarding: false,
        }
    }

    /// The limit, line end included.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Whether part of a line is held from an earlier input.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Forgets the held part of a line and any over-long line being
    /// discarded (used where the framing changes, e.g. after STARTTLS).
    pub fn clear(&mut self) {
        self.held.clear();
        self.discarding = false;
    }

    /// Gives a [`Line::Joined`] buffer back for reuse.
    pub fn recycle(&mut self, line: Line<'_>) {
        if let Line::Joined(mut v) = line {
            if self.held.is_empty() && self.held.capacity() < v.capacity() {
                v.clear();
                self.held = v;
            }
        }
    }

    /// Reads from `input` up to and including the next line end. Returns
    /// how many bytes were used (always at least one of a non-empty input)
    /// and what was found; call again with the rest.
    pub fn next<'a>(&mut self, input: &'a [u8]) -> (usize, Next<'a>) {
        let mut from = 0;
        loop {
            let rest = input.get(from..).unwrap_or_default();
            let Some(k) = memchr::memchr(b'\n', rest) else {
                if !self.discarding {
                    if self.held.len() + rest.len() > self.max {
                        self.held.clear();
                        self.discarding = true;
                        return (input.len(), Next::TooLong);
                    }
                    self.held.extend_from_slice(rest);
                }
                return (input.len(), Next::Partial);
            };
            let used = from + k + 1;
            if self.discarding {
                // The tail of a line already reported as too long.
                self.discarding = false;
                self.held.clear();
                from = used;
                continue;
            }
            let line = input.get(from..used).unwrap_or_default();
            if self.held.is_empty() {
                if line.len() > self.max {
                    return (used, Next::TooLong);
                }
                return (used, Next::Line(Line::Borrowed(line)));
            }
            if self.held.len() + line.len() > self.max {
                self.held.clear();
                return (used, Next::TooLong);
            }
            self.held.extend_from_slice(line);
            return (
                used,
                Next::Line(Line::Joined(core::mem::take(&mut self.held))),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` and records each outcome as text.
    fn run(max: usize, chunks: &[&[u8]]) -> Vec<alloc::string::String> {
        let mut r = LineReader::new(max);
        let mut out = Vec::new();
        for c in chunks {
            let mut i = 0;
            while i < c.len() {
                let (n, next) = r.next(&c[i..]);
                assert!(n > 0);
                i += n;
                match next {
                    Next::Line(l) => {
                        out.push(alloc::string::String::from_utf8_lossy(&l).into_owned());
                        r.recycle(l);
                    }
                    Next::TooLong => out.push("!".into()),
                    Next::Partial => {}
                }
            }
        }
        out
    }

    #[test]
    fn any_split_gives_the_same_lines() {
        let data = b"HELO a\r\nNOOP\r\n\nlonger line\r\nQUIT\r\n";
        let want = run(20, &[data]);
        assert_eq!(
            want,
            [
                "HELO a\r\n",
                "NOOP\r\n",
                "\n",
                "longer line\r\n",
                "QUIT\r\n"
            ]
        );
        for cut in 0..data.len() {
            let (a, b) = data.split_at(cut);
            assert_eq!(run(20, &[a, b]), want, "cut {cut}");
        }
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(run(20, &bytes), want);
    }

    #[test]
    fn over_long_lines_are_reported_once_and_skipped() {
        // Exactly at the limit (ending included) passes; one more does not.
        assert_eq!(run(6, &[b"abcd\r\n"]), ["abcd\r\n"]);
        assert_eq!(run(6, &[b"abcde\r\nok\r\n"]), ["!", "ok\r\n"]);
        // Split: reported as soon as the held part passes the limit, and
        // the tail up to the LF is dropped.
        assert_eq!(
            run(6, &[b"abc", b"defgh", b"ij\r\nok\r\n"]),
            ["!", "ok\r\n"]
        );
        // Joined line over the limit when its end arrives.
        assert_eq!(run(6, &[b"abcd", b"e\r\nok\r\n"]), ["!", "ok\r\n"]);
        let mut r = LineReader::new(6);
        assert_eq!(r.next(b"abc").1, Next::Partial);
        assert!(!r.is_empty());
        r.clear();
        assert!(r.is_empty());
        assert_eq!(r.next(b"x\n").1, Next::Line(Line::Borrowed(b"x\n")));
    }

    #[test]
    fn trim() {
        assert_eq!(trim_line_end(b"a\r\n"), b"a");
        assert_eq!(trim_line_end(b"a\n"), b"a");
        assert_eq!(trim_line_end(b"a\r"), b"a");
        assert_eq!(trim_line_end(b"a"), b"a");
    }
}
