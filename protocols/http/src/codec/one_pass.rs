//! The fast path for a request head that arrived whole: one pass over its
//! bytes that delimits, checks and locates it at once, without `httparse`.
//!
//! Why not `httparse` here: a head is handed to the application as an
//! owned `Bytes` (events own their data), and taking that share of the
//! buffer costs about 100 instructions on a short head — more than the
//! 10 % over raw `httparse` the head parse may cost in all. What wins the
//! room back is that a head needs no per-field index (lookups walk its
//! lines, see [`Headers`](super::head::Headers)): this pass records only the
//! target, the version, where the fields start and how many there are, and
//! checks field values and the target eight bytes at a time.
//!
//! It accepts only the plain, strict form — no leading empty lines, single
//! spaces in the request line, `HTTP/1.0` or `HTTP/1.1`, CRLF everywhere,
//! token names with the colon right after, within the limits — and
//! answers `None` for anything else, which the careful path (the
//! [`HeadScanner`](super::head::HeadScanner) and `httparse`) then waits
//! for, parses or names the error of. So `httparse` stays the reference:
//! every head taken here is one the careful path takes the same way, which
//! the `http_request` fuzz target and the tests check by comparing the two.

use super::framing::Summary;
use super::head::{is_tchar, HeadLimits, Span, Version, MAX_HEADERS_CAP};

/// Where the parts of a whole request head lie, found by
/// [`whole_request`]: plain numbers, so the head is built once, in place,
/// when it is split off.
pub(super) struct Whole {
    /// The head's length, its final empty line included.
    pub len: usize,
    pub target: Span,
    /// Where the first field line starts.
    pub fields_at: u32,
    /// How many field lines there are.
    pub count: u32,
    pub version: Version,
}

/// The plain, strict request head at the front of `buf`, if there is a
/// whole one; `None` for anything else (incomplete, unusual, malformed or
/// over a limit). With `SUM`, what the fields say about framing is added
/// to `summary` as they pass (the server wants it; a plain decode does
/// not pay for it).
///
/// What is accepted, and is a subset of what the careful path accepts
/// (RFC 9112 §3, §5; `httparse` 1.10 takes all of it the same way):
/// - `method SP target SP HTTP/1.x CRLF`: the method a token, the target
///   one or more bytes 0x21–0x7E (visible ASCII), the request line no
///   longer than `max_line`;
/// - field lines `name ":" OWS value OWS CRLF`: the name a token, the
///   value HTAB, SP, VCHAR or obs-text, at most `max_headers` of them;
/// - the empty line, the whole no longer than `max_head`.
#[inline]
pub(super) fn whole_request<const SUM: bool>(
    buf: &[u8],
    limits: &HeadLimits,
    summary: &mut Summary,
) -> Option<Whole> {
    // The method: GET is most requests and is worth a word compare.
    let sp = if buf.get(..4) == Some(b"GET ") {
        3
    } else {
        let n = tchar_run(buf);
        if n == 0 || buf.get(n) != Some(&b' ') {
            return None;
        }
        n
    };
    let target_at = sp + 1;
    let target_end = target_at + visible_run(buf.get(target_at..)?);
    // "SP HTTP/1.x CR LF" follows the target.
    let line = target_end + 9;
    let version = match buf.get(target_end..line + 2)? {
        b" HTTP/1.1\r\n" => Version::Http11,
        b" HTTP/1.0\r\n" => Version::Http10,
        _ => return None,
    };
    if target_end == target_at || line > limits.max_line {
        return None;
    }
    let fields_at = line + 2;
    // Past `max_head` nothing can end the head: the pass stops there
    // without a check per line.
    let buf = buf.get(..limits.max_head).unwrap_or(buf);
    let mut count = 0;
    let mut p = fields_at;
    loop {
        let rest = buf.get(p..)?;
        if rest.first() == Some(&b'\r') {
            // The empty line ends the head.
            if rest.get(1) != Some(&b'\n') || count > limits.max_headers.min(MAX_HEADERS_CAP) {
                return None;
            }
            return Some(Whole {
                len: p + 2,
                target: Span::new(target_at, target_end),
                fields_at: fields_at as u32,
                count: count as u32,
                version,
            });
        }
        let colon = tchar_run(rest);
        if colon == 0 || rest.get(colon) != Some(&b':') {
            return None;
        }
        // Whitespace around the value is value bytes too: it is trimmed
        // only where the value is read.
        let cr = colon + 1 + value_run(rest.get(colon + 1..)?);
        if rest.get(cr..cr + 2) != Some(b"\r\n") {
            return None;
        }
        count += 1;
        if SUM {
            summary.add_if_framing(&rest[..colon], &rest[colon + 1..cr]);
        }
        p += cr + 2;
    }
}

/// How many bytes at the front of `b` are token characters. Byte by
/// byte: names are short, and a lane test for the token set (which is
/// irregular) measured slower than the table.
#[inline(always)]
fn tchar_run(b: &[u8]) -> usize {
    b.iter().position(|&c| !is_tchar(c)).unwrap_or(b.len())
}

/// Eight copies of a byte, one per lane of a word.
const fn lanes(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

const HIGH: u64 = lanes(0x80);

/// How many bytes at the front of `b` satisfy the lane test `bad` (which
/// marks, by the high bit of its lane, each byte that does not): eight at
/// a time, then byte by byte for the last few.
#[inline(always)]
fn run_of(b: &[u8], bad: impl Fn(u64) -> u64) -> usize {
    let mut i = 0;
    while let Some(w) = b.get(i..i + 8) {
        let word = u64::from_le_bytes(w.try_into().unwrap_or_default());
        let marks = bad(word);
        if marks != 0 {
            // Little-endian: the first byte is the lowest lane.
            return i + (marks.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if bad(u64::from(c)) & 0x80 != 0 {
            break;
        }
        i += 1;
    }
    i
}

/// How many bytes at the front of `b` are visible ASCII, 0x21–0x7E (what a
/// request target may hold).
#[inline(always)]
fn visible_run(b: &[u8]) -> usize {
    run_of(b, |x| {
        // Each lane's low seven bits plus a bias sets the lane's high bit
        // exactly when they reach a bound, and never carries into the
        // next lane (at most 0x7F + 0x5F).
        let low = x & !HIGH;
        let from_21 = low + lanes(0x80 - 0x21);
        let from_7f = low + lanes(0x80 - 0x7f);
        (x | !from_21 | from_7f) & HIGH
    })
}

/// How many bytes at the front of `b` may be in a field value: HTAB, SP,
/// VCHAR and obs-text (0x80–0xFF) — anything but the other controls and
/// DEL.
#[inline(always)]
fn value_run(b: &[u8]) -> usize {
    // Values are the bulk of a head: sixteen bytes at a time, by a test
    // the compiler turns into a few vector operations, then the lane test
    // finds where the run ends.
    let mut i = 0;
    while let Some(block) = b.get(i..i + 16) {
        if block.iter().fold(false, |bad, &c| bad | not_value(c)) {
            break;
        }
        i += 16;
    }
    i + run_of(b.get(i..).unwrap_or_default(), value_lanes)
}

/// [`value_run`]'s lane test.
#[inline(always)]
fn value_lanes(x: u64) -> u64 {
    let low = x & !HIGH;
    let from_20 = low + lanes(0x80 - 0x20);
    let is_7f = low + lanes(0x80 - 0x7f);
    // A lane is HTAB when its XOR with 0x09 is zero, and adding 0x7F to a
    // non-zero lane sets its high bit.
    let not_tab = (low ^ lanes(0x09)) + lanes(0x7f);
    ((!from_20 & not_tab) | is_7f) & !x & HIGH
}

/// Whether `c` may not be in a field value, without branches.
#[inline(always)]
fn not_value(c: u8) -> bool {
    (c < 0x20) & (c != b'\t') | (c == 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lane tests agree with the byte sets they stand for, for every
    /// byte in every lane.
    #[test]
    fn lane_tests_match_the_byte_sets() {
        for c in 0..=255u8 {
            for at in 0..8 {
                let mut w = [b'a'; 8];
                w[at] = c;
                let visible = (0x21..=0x7e).contains(&c);
                let value = c == b'\t' || (0x20..=0x7e).contains(&c) || c >= 0x80;
                let expect = |ok: bool| if ok { 8 } else { at };
                assert_eq!(visible_run(&w), expect(visible), "visible {c:#x} at {at}");
                assert_eq!(value_run(&w), expect(value), "value {c:#x} at {at}");
                // Fewer than eight bytes: the byte-by-byte tail.
                let tail = |ok: bool| if ok { at + 1 } else { at };
                assert_eq!(visible_run(&w[..=at]), tail(visible), "visible tail {c:#x}");
                assert_eq!(value_run(&w[..=at]), tail(value), "value tail {c:#x}");
                let token = is_tchar(c);
                assert_eq!(tchar_run(&w), expect(token), "token {c:#x} at {at}");
                assert_eq!(tchar_run(&w[..=at]), tail(token), "token tail {c:#x}");
            }
        }
    }
}
