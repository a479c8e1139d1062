//! The dot framing of SMTP's DATA (RFC 5321 §4.1.1.4, §4.5.2), POP3's
//! multi-line responses (RFC 1939 §3) and NNTP's multi-line blocks
//! (RFC 3977 §3.1.1): a block ends with `CRLF . CRLF`, and a line that
//! starts with `.` has one more `.` put in front of it by the sender
//! ("dot-stuffing").
//!
//! [`Unstuffer`] is incremental: it keeps a five-state position between
//! calls, so the end-of-data marker is found however the bytes are split
//! (a `\r\n.` in one read and `\r\n` in the next, or one byte at a time),
//! and it never rescans. Only `CRLF` ends a line: a bare LF or bare CR is
//! content (and flagged), so `\n.\n` or `\r.\r` can never end a message —
//! the "SMTP smuggling" defence. Runs between line starts are handed out
//! as borrowed slices of the input, so unstuffing copies nothing itself.
//!
//! [`stuff`] is the sender's side.

use bytes::BytesMut;

/// Where the unstuffer is inside the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a line (after CRLF, or the start of the data).
    LineStart,
    /// A `.` began the line; it was removed.
    Dot,
    /// `.` then CR at the start of a line; the CR is withheld until we know
    /// whether LF (the end) follows.
    DotCr,
    /// Inside a line.
    Text,
    /// A CR inside a line; LF would end the line.
    Cr,
}

/// What the data contained besides its text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataFlags {
    /// An LF not preceded by CR.
    pub bare_lf: bool,
    /// A CR not followed by LF.
    pub bare_cr: bool,
    /// A line longer than the limit (without its CRLF).
    pub long_line: bool,
    /// A byte above 0x7F.
    pub eight_bit: bool,
    /// A NUL byte.
    pub nul: bool,
}

/// Incremental dot-unstuffer of DATA content.
#[derive(Clone, Debug)]
pub struct Unstuffer {
    state: State,
    line_len: usize,
    max_line: usize,
    flags: DataFlags,
    check_bytes: bool,
}

impl Default for Unstuffer {
    fn default() -> Self {
        Unstuffer::new(998)
    }
}

impl Unstuffer {
    /// A fresh unstuffer at the start of the data; lines longer than
    /// `max_line` octets (CRLF excluded; RFC 5321 §4.5.3.1.6 says 998) set
    /// [`DataFlags::long_line`].
    pub fn new(max_line: usize) -> Self {
        Unstuffer {
            state: State::LineStart,
            line_len: 0,
            max_line,
            flags: DataFlags::default(),
            check_bytes: false,
        }
    }

    /// Also flag 8-bit and NUL bytes (costs a scan of every byte).
    pub fn check_bytes(mut self, on: bool) -> Self {
        self.check_bytes = on;
        self
    }

    /// What was seen so far.
    pub fn flags(&self) -> DataFlags {
        self.flags
    }

    /// Starts over for another message.
    pub fn reset(&mut self) {
        *self = Unstuffer::new(self.max_line).check_bytes(self.check_bytes);
    }

    /// Feeds `input`; the unstuffed content goes to `emit` in order, as
    /// slices of `input` (and the odd withheld `"\r"`). Returns how many
    /// bytes were consumed and whether the end-of-data marker was seen: on
    /// `true` the bytes after the marker (`input[n..]`) are not part of the
    /// data. The content handed out includes the CRLF before the marker.
    pub fn feed(&mut self, input: &[u8], mut emit: impl FnMut(&[u8])) -> (usize, bool) {
        let mut i = 0;
        let mut span = 0;
        let n = input.len();
        while i < n {
            match self.state {
                State::Text => {
                    let rest = &input[i..];
                    match memchr::memchr2(b'\r', b'\n', rest) {
                        None => {
                            self.add_len(rest.len());
                            i = n;
                        }
                        Some(k) => {
                            self.add_len(k);
                            if rest[k] == b'\r' {
                                if rest.get(k + 1) == Some(&b'\n') {
                                    // The common case, a CRLF, handled here
                                    // rather than through `Cr` and
                                    // `LineStart`: a next line that starts
                                    // with anything but a dot is text again.
                                    self.line_len = 0;
                                    i += k + 2;
                                    if !matches!(input.get(i), Some(c) if *c != b'.') {
                                        self.state = State::LineStart;
                                    }
                                    continue;
                                }
                                self.state = State::Cr;
                            } else {
                                // Bare LF: content, not a line end.
                                self.flags.bare_lf = true;
                                self.add_len(1);
                            }
                            i += k + 1;
                        }
                    }
                }
                State::Cr => {
                    let b = input[i];
                    if b == b'\n' {
                        self.state = State::LineStart;
                        self.line_len = 0;
                        i += 1;
                    } else {
                        self.flags.bare_cr = true;
                        self.add_len(1);
                        self.state = State::Text;
                    }
                }
                State::LineStart => {
                    if input[i] == b'.' {
                        if i > span {
                            emit(&input[span..i]);
                        }
                        i += 1;
                        span = i;
                        self.state = State::Dot;
                    } else {
                        self.state = State::Text;
                    }
                }
                State::Dot => {
                    if input[i] == b'\r' {
                        i += 1;
                        span = i;
                        self.state = State::DotCr;
                    } else {
                        self.state = State::Text;
                    }
                }
                State::DotCr => {
                    if input[i] == b'\n' {
                        if i > span {
                            emit(&input[span..i]);
                        }
                        self.state = State::LineStart;
                        // Bytes past the marker are not the message's.
                        self.scan_bytes(input.get(..=i).unwrap_or_default());
                        return (i + 1, true);
                    }
                    // The withheld CR was content after all.
                    if i > span {
                        emit(&input[span..i]);
                    }
                    emit(b"\r");
                    span = i;
                    self.line_len = 0;
                    self.state = State::Cr;
                }
            }
        }
        // In `DotCr` the withheld CR is past `span`, so it is not emitted.
        if n > span {
            emit(&input[span..n]);
        }
        self.scan_bytes(input);
        (n, false)
    }

    fn add_len(&mut self, k: usize) {
        self.line_len += k;
        if self.line_len > self.max_line {
            self.flags.long_line = true;
        }
    }

    fn scan_bytes(&mut self, input: &[u8]) {
        if !self.check_bytes {
            return;
        }
        if !self.flags.eight_bit && input.iter().any(|b| *b >= 0x80) {
            self.flags.eight_bit = true;
        }
        if !self.flags.nul && memchr::memchr(0, input).is_some() {
            self.flags.nul = true;
        }
    }
}

/// Unstuffs a whole buffer: the content and how many bytes of `input` it
/// used, or `None` if the end-of-data marker is missing.
pub fn unstuff_all(input: &[u8], max_line: usize) -> Option<(BytesMut, usize, DataFlags)> {
    let mut u = Unstuffer::new(max_line);
    let mut out = BytesMut::with_capacity(input.len());
    let (n, done) = u.feed(input, |s| out.extend_from_slice(s));
    done.then_some((out, n, u.flags()))
}

/// Dot-stuffs `message` for DATA and appends the end-of-data marker: a
/// `.` is doubled at each line start, and a missing final CRLF is added
/// (the marker must start a line).
pub fn stuff(message: &[u8], out: &mut BytesMut) {
    out.reserve(message.len() + 8);
    let mut at_line_start = true;
    let mut rest = message;
    while !rest.is_empty() {
        if at_line_start && rest[0] == b'.' {
            out.extend_from_slice(b".");
        }
        match memchr::memchr(b'\n', rest) {
            Some(k) => {
                out.extend_from_slice(&rest[..=k]);
                at_line_start = k > 0 && rest[k - 1] == b'\r';
                rest = &rest[k + 1..];
            }
            None => {
                out.extend_from_slice(rest);
                at_line_start = false;
                rest = &[];
            }
        }
    }
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn run(chunks: &[&[u8]]) -> (Vec<u8>, usize, bool) {
        let mut u = Unstuffer::new(998);
        let mut out = Vec::new();
        let mut used = 0;
        for c in chunks {
            let (n, done) = u.feed(c, |s| out.extend_from_slice(s));
            used += n;
            if done {
                return (out, used, true);
            }
        }
        (out, used, false)
    }

    #[test]
    fn whole_and_split() {
        let data = b"Hi\r\n..dot\r\n.x\r\n\r\n.\r\nQUIT\r\n";
        let want = b"Hi\r\n.dot\r\nx\r\n\r\n".to_vec();
        let (out, used, done) = run(&[data]);
        assert!(done);
        assert_eq!(out, want);
        assert_eq!(&data[used..], b"QUIT\r\n");
        for cut in 0..data.len() {
            let (a, b) = data.split_at(cut);
            let (out, used, done) = run(&[a, b]);
            assert!(done, "cut {cut}");
            assert_eq!(out, want, "cut {cut}");
            assert_eq!(used, data.len() - 6);
        }
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        let (out, _, done) = run(&bytes);
        assert!(done && out == want);
    }

    #[test]
    fn empty_message_and_bare_endings() {
        let (out, used, done) = run(&[b".\r\n"]);
        assert!(done && out.is_empty() && used == 3);
        let mut u = Unstuffer::new(998);
        let mut out = Vec::new();
        let (_, done) = u.feed(b"a\n.\nb\r.\rc\r\n.\r", |s| out.extend_from_slice(s));
        assert!(!done);
        assert!(u.flags().bare_lf && u.flags().bare_cr);
        let (_, done) = u.feed(b"x\r\n.\r\n", |s| out.extend_from_slice(s));
        assert!(done);
        assert_eq!(out, b"a\n.\nb\r.\rc\r\n\rx\r\n");
    }

    #[test]
    fn stuff_round_trip() {
        for m in [
            &b"hello\r\n.world\r\n..\r\n"[..],
            b".",
            b"",
            b"no newline",
            b"a\r\n.\r\n",
        ] {
            let mut wire = BytesMut::new();
            stuff(m, &mut wire);
            let (out, used, _) = unstuff_all(&wire, 998).expect("terminated");
            assert_eq!(used, wire.len());
            let mut want = m.to_vec();
            if !m.is_empty() && !m.ends_with(b"\r\n") {
                want.extend_from_slice(b"\r\n");
            }
            assert_eq!(&out[..], &want[..]);
        }
    }

    #[test]
    fn long_lines() {
        let mut line = alloc::vec![b'a'; 998];
        line.extend_from_slice(b"\r\n.\r\n");
        let (_, _, f) = unstuff_all(&line, 998).expect("end");
        assert!(!f.long_line);
        let mut line = alloc::vec![b'a'; 999];
        line.extend_from_slice(b"\r\n.\r\n");
        let (_, _, f) = unstuff_all(&line, 998).expect("end");
        assert!(f.long_line);
    }

    proptest::proptest! {
        /// Whole input (CRLFs met in the fast path) and one byte at a time
        /// (every byte through the state machine) agree on content, use,
        /// and flags, for data full of dots, bare CRs and bare LFs.
        #[test]
        fn whole_equals_bytewise(picks in proptest::collection::vec(0usize..8, 0..64)) {
            const P: [&[u8]; 8] = [b"\r\n", b"\r", b"\n", b".", b"ab", b"..", b"\r\n.\r\n", b"\xff\0"];
            let data: Vec<u8> = picks.iter().flat_map(|i| P[*i].iter().copied()).collect();
            let mut u = Unstuffer::new(4).check_bytes(true);
            let mut whole = Vec::new();
            let (n, done) = u.feed(&data, |s| whole.extend_from_slice(s));
            let mut v = Unstuffer::new(4).check_bytes(true);
            let mut bytewise = Vec::new();
            let (mut m, mut fin) = (0, false);
            for b in data.chunks(1) {
                let (k, d) = v.feed(b, |s| bytewise.extend_from_slice(s));
                m += k;
                if d {
                    fin = true;
                    break;
                }
            }
            proptest::prop_assert_eq!((n, done, u.flags()), (m, fin, v.flags()));
            proptest::prop_assert_eq!(whole, bytewise);
        }
    }
}
