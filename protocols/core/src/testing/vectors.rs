//! Spec vectors: the one data format every twill protocol's test vectors
//! use, documented in `spec-vectors/README.md`, and its loader.
//!
//! A vector file is plain text. Leading `# key: value` lines are headers
//! (`# source:` is required and names the RFC and section); then comes
//! either a *transcript* (client and server turns, for machines) or a list
//! of *messages* (input bytes and the expected parse, for codecs):
//!
//! ```text
//! # source: RFC 862 §1
//! C: hello\r\n
//! S: hello\r\n
//! C eof
//! S close
//! ```
//!
//! ```text
//! # source: cr.yp.to/proto/netstrings.txt §2
//! # codec: netstring
//! bytes: 12:hello world!,
//! expect: hello world!
//! bytes: 01:a,
//! error: leading-zero
//! ```
//!
//! [`parse_vector`] reads one file's text; [`load_vectors`] every `.txt`
//! file of a directory. A transcript's client turns become [`Step`]s with
//! [`Vector::client_steps`], and [`Vector::check_server`] compares what a
//! machine sent against its server turns.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use super::Step;
use crate::id::ConnId;
use crate::io::Close;
use crate::time::Duration;

/// A vector file that could not be read or parsed: which file, which line
/// (1-based; 0 when the file as a whole is at fault) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorError {
    /// The file (or the name given to [`parse_vector`]).
    pub file: String,
    /// The 1-based line, or 0.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for VectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

impl core::error::Error for VectorError {}

/// Which end of a connection a turn belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The client (`C`): its bytes are fed to the server under test.
    Client,
    /// The server (`S`): its bytes are what the server must send.
    Server,
}

/// One line of a transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Turn {
    /// `C: …`, `S: …`, `C/hex: …`, `S/hex: …`: bytes one side sends.
    Bytes {
        /// Line in the file.
        line: usize,
        /// Who sends.
        side: Side,
        /// Connection number (1 unless written `C2:`, `S2:` …).
        conn: u32,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// `S/match: …`: server bytes whose content depends on time or chance,
    /// checked against a [`Pattern`].
    Match {
        /// Line in the file.
        line: usize,
        /// Connection number.
        conn: u32,
        /// What the bytes must look like.
        pattern: Pattern,
    },
    /// `C eof` / `S eof`: that side finished sending (half-close).
    Eof {
        /// Line in the file.
        line: usize,
        /// Who.
        side: Side,
        /// Connection number.
        conn: u32,
    },
    /// `C close` / `S close`: that side closed the connection (after
    /// sending everything it had).
    Close {
        /// Line in the file.
        line: usize,
        /// Who.
        side: Side,
        /// Connection number.
        conn: u32,
    },
    /// `C abort` / `S abort`: that side reset the connection.
    Abort {
        /// Line in the file.
        line: usize,
        /// Who.
        side: Side,
        /// Connection number.
        conn: u32,
    },
    /// `advance 30s`: time passes.
    Advance {
        /// Line in the file.
        line: usize,
        /// How long.
        by: Duration,
    },
}

impl Turn {
    /// The line of the file this turn came from.
    pub fn line(&self) -> usize {
        match self {
            Turn::Bytes { line, .. }
            | Turn::Match { line, .. }
            | Turn::Eof { line, .. }
            | Turn::Close { line, .. }
            | Turn::Abort { line, .. }
            | Turn::Advance { line, .. } => *line,
        }
    }

    /// The connection number, if the turn has one.
    pub fn conn(&self) -> Option<u32> {
        match self {
            Turn::Bytes { conn, .. }
            | Turn::Match { conn, .. }
            | Turn::Eof { conn, .. }
            | Turn::Close { conn, .. }
            | Turn::Abort { conn, .. } => Some(*conn),
            Turn::Advance { .. } => None,
        }
    }

    /// Who acts, if anyone (`advance` has no side).
    pub fn side(&self) -> Option<Side> {
        match self {
            Turn::Bytes { side, .. }
            | Turn::Eof { side, .. }
            | Turn::Close { side, .. }
            | Turn::Abort { side, .. } => Some(*side),
            Turn::Match { .. } => Some(Side::Server),
            Turn::Advance { .. } => None,
        }
    }
}

/// How a message case ends after its expected messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// All input was consumed by the expected messages.
    Complete,
    /// `pending`: the input ends inside an incomplete message, which is not
    /// an error.
    Pending,
    /// `error: KIND`: decoding fails with this error kind (a neutral name
    /// such as `line-too-long`, listed in the README).
    Error(String),
}

/// One case of a message vector: input bytes and their expected parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// Line of the case's first `bytes:`.
    pub line: usize,
    /// All `bytes:` lines of the case, concatenated.
    pub input: Vec<u8>,
    /// Each `expect:` line: one decoded message, in order.
    pub expect: Vec<Vec<u8>>,
    /// What follows the expected messages.
    pub outcome: Outcome,
}

/// What a vector holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Client and server turns, for machines.
    Transcript(Vec<Turn>),
    /// Input bytes and expected parses, for codecs.
    Messages(Vec<Case>),
}

/// One vector file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vector {
    /// The file name (or the name given to [`parse_vector`]).
    pub name: String,
    /// The `# source:` header: RFC (or document) and section.
    pub source: String,
    /// Every `# key: value` header in order, `source` included.
    pub headers: Vec<(String, String)>,
    /// The turns or cases.
    pub body: Body,
}

impl Vector {
    /// The first header named `key`.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `# transport:` — `tcp` (the default) or `udp`. In a `udp`
    /// transcript each `C` line is one datagram and each `S` line one
    /// expected reply datagram.
    pub fn transport(&self) -> &str {
        self.header("transport").unwrap_or("tcp")
    }

    /// `# compare: prefix`: the server may send more than the transcript
    /// lists (an endless chargen stream) and may close where the
    /// transcript says nothing. The default, `exact`, demands exactly the
    /// listed bytes and closes.
    pub fn prefix_only(&self) -> bool {
        self.header("compare") == Some("prefix")
    }

    /// The turns, if this is a transcript.
    pub fn turns(&self) -> Option<&[Turn]> {
        match &self.body {
            Body::Transcript(t) => Some(t),
            Body::Messages(_) => None,
        }
    }

    /// The cases, if this is a message vector.
    pub fn cases(&self) -> Option<&[Case]> {
        match &self.body {
            Body::Messages(c) => Some(c),
            Body::Transcript(_) => None,
        }
    }

    /// Every connection number the transcript names, in order of first
    /// appearance.
    pub fn conns(&self) -> Vec<u32> {
        let mut v = Vec::new();
        for t in self.turns().unwrap_or(&[]) {
            if let Some(c) = t.conn() {
                if !v.contains(&c) {
                    v.push(c);
                }
            }
        }
        v
    }

    /// The client side of a TCP transcript as [`Step`]s for
    /// [`assert_chunking`](super::assert_chunking): connection `n` is
    /// `ConnId(n)`, accepted where it first appears; client bytes become
    /// `Data`, `C eof`, `C close` and `C abort` become `Eof`, `advance`
    /// becomes `Advance`. Server turns are expectations and produce no step.
    pub fn client_steps(&self) -> Result<Vec<Step>, VectorError> {
        let turns = self
            .turns()
            .ok_or_else(|| self.err(0, "not a transcript"))?;
        if self.transport() != "tcp" {
            return Err(self.err(0, "client_steps is for tcp transcripts"));
        }
        let mut steps = Vec::new();
        let mut seen: Vec<u32> = Vec::new();
        for t in turns {
            if let Some(c) = t.conn() {
                if !seen.contains(&c) {
                    seen.push(c);
                    steps.push(Step::Accept(ConnId(u64::from(c))));
                }
            }
            match t {
                Turn::Bytes {
                    side: Side::Client,
                    conn,
                    bytes,
                    ..
                } => steps.push(Step::Data(ConnId(u64::from(*conn)), bytes.clone())),
                Turn::Eof {
                    side: Side::Client,
                    conn,
                    ..
                }
                | Turn::Close {
                    side: Side::Client,
                    conn,
                    ..
                }
                | Turn::Abort {
                    side: Side::Client,
                    conn,
                    ..
                } => steps.push(Step::Eof(ConnId(u64::from(*conn)))),
                Turn::Advance { by, .. } => steps.push(Step::Advance(*by)),
                _ => {}
            }
        }
        Ok(steps)
    }

    /// Everything the server must send on connection `conn`, as one
    /// pattern (literal bytes and `S/match` patterns in order).
    pub fn server_pattern(&self, conn: u32) -> Pattern {
        let mut p = Pattern { pieces: Vec::new() };
        for t in self.turns().unwrap_or(&[]) {
            match t {
                Turn::Bytes {
                    side: Side::Server,
                    conn: c,
                    bytes,
                    ..
                } if *c == conn => p.push_literal(bytes),
                Turn::Match {
                    conn: c, pattern, ..
                } if *c == conn => p.pieces.extend(pattern.pieces.iter().cloned()),
                _ => {}
            }
        }
        p
    }

    /// How the transcript says the server ends connection `conn`: `S close`
    /// (`Graceful`), `S eof` (`WriteHalf`), `S abort` (`Abort`), or `None`.
    pub fn server_close(&self, conn: u32) -> Option<Close> {
        self.turns().unwrap_or(&[]).iter().find_map(|t| match t {
            Turn::Close {
                side: Side::Server,
                conn: c,
                ..
            } if *c == conn => Some(Close::Graceful),
            Turn::Eof {
                side: Side::Server,
                conn: c,
                ..
            } if *c == conn => Some(Close::WriteHalf),
            Turn::Abort {
                side: Side::Server,
                conn: c,
                ..
            } if *c == conn => Some(Close::Abort),
            _ => None,
        })
    }

    /// Checks a TCP server's recorded output (e.g. a
    /// [`Trace`](super::Trace)'s `sent` and `closes`) against the server
    /// turns: per connection, the bytes must match
    /// [`server_pattern`](Self::server_pattern) (as a prefix under
    /// `# compare: prefix`), and the closes must be the ones listed.
    /// Ordering between different connections is not checked.
    pub fn check_server(
        &self,
        sent: &BTreeMap<ConnId, Vec<u8>>,
        closes: &[(ConnId, Close)],
    ) -> Result<(), VectorError> {
        let prefix = self.prefix_only();
        let conns = self.conns();
        for &c in &conns {
            let id = ConnId(u64::from(c));
            let got = sent.get(&id).map_or(&[][..], |v| v.as_slice());
            let pattern = self.server_pattern(c);
            let ok = if prefix {
                pattern.matches_prefix(got)
            } else {
                pattern.matches(got)
            };
            if !ok {
                return Err(self.err(
                    0,
                    &format!(
                        "server output on connection {c} does not match: got {:?}",
                        Escaped(got)
                    ),
                ));
            }
            let want = self.server_close(c);
            let got_close = closes.iter().find(|(i, _)| *i == id).map(|(_, h)| *h);
            match (want, got_close) {
                (Some(w), Some(g)) if w == g => {}
                (None, None) => {}
                (None, Some(_)) if prefix => {}
                (w, g) => {
                    return Err(self.err(
                        0,
                        &format!(
                            "connection {c}: the transcript says the server closes with \
                             {w:?}, the server did {g:?}"
                        ),
                    ))
                }
            }
        }
        if !prefix {
            for (id, bytes) in sent {
                let named = conns.iter().any(|c| u64::from(*c) == id.0);
                if !named && !bytes.is_empty() {
                    return Err(self.err(
                        0,
                        &format!("the server sent on {id}, which the transcript never names"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn err(&self, line: usize, message: &str) -> VectorError {
        VectorError {
            file: self.name.clone(),
            line,
            message: message.to_string(),
        }
    }
}

/// Bytes shown with the vector escapes, for messages.
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for &b in self.0.iter().take(512) {
            match b {
                b'\r' => f.write_str("\\r")?,
                b'\n' => f.write_str("\\n")?,
                b'\t' => f.write_str("\\t")?,
                b'\\' => f.write_str("\\\\")?,
                b'"' => f.write_str("\\\"")?,
                0x20..=0x7e => write!(f, "{}", b as char)?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        if self.0.len() > 512 {
            write!(f, "…\" ({} bytes)", self.0.len())
        } else {
            f.write_str("\"")
        }
    }
}

/// A character class of a [`Pattern`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// `d`: an ASCII digit.
    Digit,
    /// `a`: an ASCII letter.
    Alpha,
    /// `p`: printable ASCII, space included (0x20–0x7E).
    Print,
    /// `t`: text: printable ASCII, tab, CR and LF.
    Text,
    /// `b`: any byte.
    Byte,
}

impl Class {
    fn has(self, b: u8) -> bool {
        match self {
            Class::Digit => b.is_ascii_digit(),
            Class::Alpha => b.is_ascii_alphabetic(),
            Class::Print => (0x20..=0x7e).contains(&b),
            Class::Text => (0x20..=0x7e).contains(&b) || matches!(b, b'\t' | b'\r' | b'\n'),
            Class::Byte => true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Lit(Vec<u8>),
    Class {
        class: Class,
        min: usize,
        max: usize,
    },
}

/// What server bytes must look like when their content depends on time or
/// chance (`S/match:`). Literal text (with the usual escapes) plus classes
/// in braces: `{d}` a digit, `{a}` a letter, `{p}` printable ASCII, `{t}`
/// text (printable, tab, CR, LF), `{b}` any byte; a class may be followed
/// by `*` (any number), `+` (at least one), `:N` (exactly N) or `:N-M`
/// (N to M) inside the braces, e.g. `{d:4}` or `{p:1-512}`. `{{` is a
/// literal `{`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pieces: Vec<Piece>,
}

impl Pattern {
    /// Parses a pattern (without the `S/match:` prefix).
    pub fn parse(src: &str) -> Result<Pattern, String> {
        let mut p = Pattern { pieces: Vec::new() };
        let mut lit = Vec::new();
        let mut rest = src;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("{{") {
                lit.push(b'{');
                rest = r;
            } else if let Some(r) = rest.strip_prefix('{') {
                let end = r.find('}').ok_or("unclosed '{' in pattern")?;
                let spec = &r[..end];
                rest = &r[end + 1..];
                p.push_literal(&core::mem::take(&mut lit));
                p.pieces.push(parse_class(spec)?);
            } else {
                let next = rest.find('{').unwrap_or(rest.len());
                lit.extend(unescape(&rest[..next])?);
                rest = &rest[next..];
            }
        }
        p.push_literal(&lit);
        Ok(p)
    }

    /// A pattern matching exactly these bytes.
    pub fn literal(bytes: &[u8]) -> Pattern {
        let mut p = Pattern { pieces: Vec::new() };
        p.push_literal(bytes);
        p
    }

    fn push_literal(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(Piece::Lit(l)) = self.pieces.last_mut() {
            l.extend_from_slice(bytes);
        } else {
            self.pieces.push(Piece::Lit(bytes.to_vec()));
        }
    }

    /// Whether `input` matches the whole pattern.
    pub fn matches(&self, input: &[u8]) -> bool {
        self.reachable(input)[input.len()]
    }

    /// Whether some prefix of `input` (possibly all of it) matches.
    pub fn matches_prefix(&self, input: &[u8]) -> bool {
        self.reachable(input).iter().any(|r| *r)
    }

    /// Positions of `input` at which the pattern can have matched, run as a
    /// set of states in time linear in the input per piece.
    fn reachable(&self, input: &[u8]) -> Vec<bool> {
        let n = input.len();
        let mut reach = vec![false; n + 1];
        reach[0] = true;
        for piece in &self.pieces {
            let mut next = vec![false; n + 1];
            match piece {
                Piece::Lit(l) => {
                    for i in 0..=n {
                        if reach[i] && input[i..].starts_with(l) {
                            next[i + l.len()] = true;
                        }
                    }
                }
                Piece::Class { class, min, max } => {
                    // run[i]: how many bytes of the class start at i.
                    let mut run = vec![0usize; n + 1];
                    for i in (0..n).rev() {
                        run[i] = if class.has(input[i]) {
                            run[i + 1] + 1
                        } else {
                            0
                        };
                    }
                    // Mark [i+min, i+min(max, run)] with a difference array.
                    let mut diff = vec![0isize; n + 2];
                    for i in 0..=n {
                        if reach[i] && run[i] >= *min {
                            let hi = i + run[i].min(*max);
                            diff[i + min] += 1;
                            diff[hi + 1] -= 1;
                        }
                    }
                    let mut acc = 0isize;
                    for i in 0..=n {
                        acc += diff[i];
                        next[i] = acc > 0;
                    }
                }
            }
            reach = next;
        }
        reach
    }
}

fn parse_class(spec: &str) -> Result<Piece, String> {
    let mut chars = spec.chars();
    let class = match chars.next() {
        Some('d') => Class::Digit,
        Some('a') => Class::Alpha,
        Some('p') => Class::Print,
        Some('t') => Class::Text,
        Some('b') => Class::Byte,
        _ => return Err(format!("unknown pattern class {{{spec}}}")),
    };
    let q = chars.as_str();
    let (min, max) = match q {
        "" => (1, 1),
        "*" => (0, usize::MAX),
        "+" => (1, usize::MAX),
        _ => {
            let range = q
                .strip_prefix(':')
                .ok_or_else(|| format!("bad repetition in {{{spec}}}"))?;
            let num = |s: &str| {
                s.parse::<usize>()
                    .map_err(|_| format!("bad count in {{{spec}}}"))
            };
            match range.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let n = num(range)?;
                    (n, n)
                }
            }
        }
    };
    if min > max {
        return Err(format!("empty range in {{{spec}}}"));
    }
    Ok(Piece::Class { class, min, max })
}

/// Decodes the text form: C-style escapes `\r \n \t \\ \0 \xNN`; every
/// other character stands for its UTF-8 bytes.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let e = *bytes.get(i + 1).ok_or("a line ends in a lone backslash")?;
        i += 2;
        match e {
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'0' => out.push(0),
            b'\\' => out.push(b'\\'),
            b'x' => {
                let hex = bytes.get(i..i + 2).ok_or("\\x needs two hex digits")?;
                out.push(hex_byte(hex[0], hex[1]).ok_or("\\x needs two hex digits")?);
                i += 2;
            }
            other => {
                return Err(format!(
                    "unknown escape \\{} (use \\r \\n \\t \\\\ \\0 \\xNN)",
                    other as char
                ))
            }
        }
    }
    Ok(out)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    Some(hex_digit(hi)? << 4 | hex_digit(lo)?)
}

/// Decodes the hex form: pairs of hex digits, whitespace between pairs.
pub fn unhex(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for word in text.split_ascii_whitespace() {
        let w = word.as_bytes();
        if w.len() % 2 != 0 {
            return Err(format!("odd number of hex digits in {word:?}"));
        }
        for pair in w.chunks(2) {
            out.push(hex_byte(pair[0], pair[1]).ok_or_else(|| format!("not hex: {word:?}"))?);
        }
    }
    Ok(out)
}

fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1_000_000u64)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000_000_000u64)
    } else {
        return None;
    };
    let n: u64 = num.parse().ok()?;
    Some(Duration::from_nanos(n.checked_mul(unit)?))
}

/// A side token: `C`, `S`, `C2`, `S12` → (side, conn).
fn parse_side(tok: &str) -> Option<(Side, u32)> {
    let side = match tok.as_bytes().first()? {
        b'C' => Side::Client,
        b'S' => Side::Server,
        _ => return None,
    };
    let num = &tok[1..];
    let conn = if num.is_empty() {
        1
    } else {
        if num.starts_with('0') || !num.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        num.parse().ok()?
    };
    Some((side, conn))
}

fn payload(kind: &str, text: &str) -> Result<Vec<u8>, String> {
    match kind {
        "" => unescape(text),
        "hex" => unhex(text),
        _ => Err(format!("unknown form /{kind} (use the text form or /hex)")),
    }
}

/// Parses one vector file's text. `name` is used in errors and as
/// [`Vector::name`].
pub fn parse_vector(name: &str, text: &str) -> Result<Vector, VectorError> {
    let err = |line: usize, message: String| VectorError {
        file: name.to_string(),
        line,
        message,
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut in_headers = true;
    let mut turns: Vec<Turn> = Vec::new();
    let mut cases: Vec<Case> = Vec::new();
    // Whether the current case is still collecting `bytes:` lines.
    let mut case_open = false;

    for (idx, raw) in text.split('\n').enumerate() {
        let line = idx + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() {
            continue;
        }
        if let Some(comment) = raw.strip_prefix('#') {
            if in_headers {
                if let Some((k, v)) = comment.trim().split_once(':') {
                    let k = k.trim();
                    if !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    {
                        headers.push((k.to_string(), v.trim().to_string()));
                    }
                }
            }
            continue;
        }
        in_headers = false;

        // `NAME: payload` or `NAME[/form]: payload`, else `WORD args…`.
        let tok_end = raw.find([':', ' ', '\t']).unwrap_or(raw.len());
        let tok = &raw[..tok_end];
        let is_data = raw[tok_end..].starts_with(':');
        if is_data {
            let after = &raw[tok_end + 1..];
            let text = after.strip_prefix(' ').unwrap_or(after);
            let (head, form) = tok.split_once('/').unwrap_or((tok, ""));
            if let Some((side, conn)) = parse_side(head) {
                if !cases.is_empty() {
                    return Err(err(
                        line,
                        "a file holds a transcript or messages, not both".into(),
                    ));
                }
                if form == "match" {
                    if side == Side::Client {
                        return Err(err(line, "only server turns may be /match patterns".into()));
                    }
                    let pattern = Pattern::parse(text).map_err(|m| err(line, m))?;
                    turns.push(Turn::Match {
                        line,
                        conn,
                        pattern,
                    });
                } else {
                    let bytes = payload(form, text).map_err(|m| err(line, m))?;
                    turns.push(Turn::Bytes {
                        line,
                        side,
                        conn,
                        bytes,
                    });
                }
                continue;
            }
            if !turns.is_empty() && matches!(head, "bytes" | "expect" | "error") {
                return Err(err(
                    line,
                    "a file holds a transcript or messages, not both".into(),
                ));
            }
            match head {
                "bytes" => {
                    let bytes = payload(form, text).map_err(|m| err(line, m))?;
                    if case_open {
                        if let Some(c) = cases.last_mut() {
                            c.input.extend_from_slice(&bytes);
                        }
                    } else {
                        cases.push(Case {
                            line,
                            input: bytes,
                            expect: Vec::new(),
                            outcome: Outcome::Complete,
                        });
                        case_open = true;
                    }
                }
                "expect" => {
                    let bytes = payload(form, text).map_err(|m| err(line, m))?;
                    let case = cases
                        .last_mut()
                        .ok_or_else(|| err(line, "`expect:` before any `bytes:`".into()))?;
                    if case.outcome != Outcome::Complete {
                        return Err(err(line, "`expect:` after the case's end".into()));
                    }
                    case.expect.push(bytes);
                    case_open = false;
                }
                "error" => {
                    if !form.is_empty() {
                        return Err(err(line, "`error:` takes a kind name".into()));
                    }
                    let case = cases
                        .last_mut()
                        .ok_or_else(|| err(line, "`error:` before any `bytes:`".into()))?;
                    if case.outcome != Outcome::Complete {
                        return Err(err(line, "the case already ended".into()));
                    }
                    let kind = text.trim();
                    if kind.is_empty() {
                        return Err(err(line, "`error:` needs a kind".into()));
                    }
                    case.outcome = Outcome::Error(kind.to_string());
                    case_open = false;
                }
                _ => {
                    return Err(err(
                        line,
                        format!(
                            "unknown directive {tok:?} (expected C:, S:, S/match:, bytes:, \
                             expect:, error:)"
                        ),
                    ))
                }
            }
            continue;
        }

        let args: Vec<&str> = raw[tok_end..].split_ascii_whitespace().collect();
        if let Some((side, conn)) = parse_side(tok) {
            if !cases.is_empty() {
                return Err(err(
                    line,
                    "a file holds a transcript or messages, not both".into(),
                ));
            }
            let turn = match args.as_slice() {
                ["eof"] => Turn::Eof { line, side, conn },
                ["close"] => Turn::Close { line, side, conn },
                ["abort"] => Turn::Abort { line, side, conn },
                _ => {
                    return Err(err(
                        line,
                        format!(
                            "expected `{tok}: bytes`, or `{tok} eof`, `{tok} close`, `{tok} abort`"
                        ),
                    ))
                }
            };
            turns.push(turn);
            continue;
        }
        match (tok, args.as_slice()) {
            ("advance", [d]) => {
                if !cases.is_empty() {
                    return Err(err(line, "`advance` belongs in transcripts".into()));
                }
                let by = parse_duration(d)
                    .ok_or_else(|| err(line, format!("bad duration {d:?} (use 30s or 250ms)")))?;
                turns.push(Turn::Advance { line, by });
            }
            ("pending", []) => {
                let case = cases
                    .last_mut()
                    .ok_or_else(|| err(line, "`pending` before any `bytes:`".into()))?;
                if case.outcome != Outcome::Complete {
                    return Err(err(line, "the case already ended".into()));
                }
                case.outcome = Outcome::Pending;
                case_open = false;
            }
            _ => return Err(err(line, format!("unknown directive {raw:?}"))),
        }
    }

    let source = headers
        .iter()
        .find(|(k, _)| k == "source")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| err(1, "missing `# source:` header (RFC and section)".into()))?;
    if source.is_empty() {
        return Err(err(1, "empty `# source:` header".into()));
    }
    let body = match (turns.is_empty(), cases.is_empty()) {
        (false, true) => Body::Transcript(turns),
        (true, false) => Body::Messages(cases),
        _ => return Err(err(0, "no turns and no messages".into())),
    };
    let v = Vector {
        name: name.to_string(),
        source,
        headers,
        body,
    };
    match v.transport() {
        "tcp" | "udp" => {}
        other => return Err(err(0, format!("unknown transport {other:?}"))),
    }
    match v.header("compare") {
        None | Some("exact") | Some("prefix") | Some("message") => {}
        Some(other) => return Err(err(0, format!("unknown compare mode {other:?}"))),
    }
    Ok(v)
}

/// Reads and parses one vector file.
#[cfg(feature = "std")]
pub fn load_vector(path: &std::path::Path) -> Result<Vector, VectorError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| VectorError {
        file: name.clone(),
        line: 0,
        message: e.to_string(),
    })?;
    parse_vector(&name, &text)
}

/// Reads every `*.txt` file of `dir` (not recursing), sorted by name.
/// Fails on an unreadable directory, a bad file, or a directory with no
/// vectors (so a mistyped path never passes silently).
#[cfg(feature = "std")]
pub fn load_vectors(dir: impl AsRef<std::path::Path>) -> Result<Vec<Vector>, VectorError> {
    let dir = dir.as_ref();
    let io_err = |e: std::io::Error| VectorError {
        file: dir.display().to_string(),
        line: 0,
        message: e.to_string(),
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let path = entry.map_err(io_err)?.path();
        if path.extension().is_some_and(|e| e == "txt") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(VectorError {
            file: dir.display().to_string(),
            line: 0,
            message: "no .txt vectors in this directory".into(),
        });
    }
    paths.iter().map(|p| load_vector(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_parses() {
        let v = parse_vector(
            "t",
            "# source: RFC 862 §1\n# comment without key\n\nC: hi\\r\\n\nS/hex: 68 69 0d0a\n\
             C2: x\nadvance 2s\nC eof\nS close\n",
        )
        .unwrap();
        assert_eq!(v.source, "RFC 862 §1");
        let turns = v.turns().unwrap();
        assert_eq!(turns.len(), 6);
        assert_eq!(
            turns[1],
            Turn::Bytes {
                line: 5,
                side: Side::Server,
                conn: 1,
                bytes: b"hi\r\n".to_vec()
            }
        );
        assert_eq!(v.conns(), vec![1, 2]);
        let steps = v.client_steps().unwrap();
        assert_eq!(
            steps,
            vec![
                Step::Accept(ConnId(1)),
                Step::Data(ConnId(1), b"hi\r\n".to_vec()),
                Step::Accept(ConnId(2)),
                Step::Data(ConnId(2), b"x".to_vec()),
                Step::Advance(Duration::from_secs(2)),
                Step::Eof(ConnId(1)),
            ]
        );
        let mut sent = BTreeMap::new();
        sent.insert(ConnId(1), b"hi\r\n".to_vec());
        v.check_server(&sent, &[(ConnId(1), Close::Graceful)])
            .unwrap();
        assert!(v.check_server(&sent, &[]).is_err());
        sent.insert(ConnId(1), b"hi\r\nmore".to_vec());
        assert!(v
            .check_server(&sent, &[(ConnId(1), Close::Graceful)])
            .is_err());
    }

    #[test]
    fn messages_parse() {
        let v = parse_vector(
            "m",
            "# source: x §1\nbytes: 3:a\nbytes/hex: 62 63 2c\nexpect: abc\n\
             bytes: 1:\nexpect/hex: \npending\nbytes: x\nerror: bad-length\n",
        )
        .unwrap();
        let cases = v.cases().unwrap();
        assert_eq!(cases.len(), 3);
        assert_eq!(cases[0].input, b"3:abc,");
        assert_eq!(cases[0].expect, vec![b"abc".to_vec()]);
        assert_eq!(cases[0].outcome, Outcome::Complete);
        assert_eq!(cases[1].expect, vec![Vec::<u8>::new()]);
        assert_eq!(cases[1].outcome, Outcome::Pending);
        assert_eq!(cases[2].outcome, Outcome::Error("bad-length".into()));
        assert_eq!(cases[2].line, 8);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_vector("f.txt", "# source: a\nC: ok\nC: bad \\q\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.to_string().starts_with("f.txt:3: unknown escape"), "{e}");
        let e = parse_vector("f.txt", "C: no source\n").unwrap_err();
        assert!(e.message.contains("source"));
        let e = parse_vector("f.txt", "# source: a\nC: x\nbytes: y\n").unwrap_err();
        assert_eq!(e.line, 3);
        let e = parse_vector("f.txt", "# source: a\nC hello\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_vector("f.txt", "# source: a\nC/match: x\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_vector("f.txt", "# source: a\nS/hex: 123\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_vector("f.txt", "# source: a\nadvance 3 days\n").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn patterns() {
        let p = Pattern::parse("{a:3}, {d:2} {a:3} {d:4} {d:2}:{d:2}:{d:2} GMT\\r\\n").unwrap();
        assert!(p.matches(b"Thu, 01 Jan 2026 00:00:00 GMT\r\n"));
        assert!(!p.matches(b"Thu, 1 Jan 2026 00:00:00 GMT\r\n"));
        let p = Pattern::parse("{p+}\\r\\n").unwrap();
        assert!(p.matches(b"any text at all\r\n"));
        assert!(!p.matches(b"\r\n"));
        assert!(!p.matches(b"x\r\ny\r\n"));
        let p = Pattern::parse("{t:1-5}!").unwrap();
        assert!(p.matches(b"a\r\nb!"));
        assert!(!p.matches(b"abcdef!"));
        assert!(Pattern::parse("{{x}").unwrap().matches(b"{x}"));
        assert!(Pattern::literal(b"ab").matches_prefix(b"abc"));
        assert!(!Pattern::literal(b"ab").matches_prefix(b"a"));
        assert!(Pattern::parse("{q}").is_err());
        assert!(Pattern::parse("{d:5-2}").is_err());
        assert!(Pattern::parse("{d").is_err());
    }
}
