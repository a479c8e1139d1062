//! The fast path for a head that arrived whole: one pass over its bytes
//! that delimits, checks and locates it at once, without `httparse`.
//!
//! Why not `httparse` here: a head is handed to the application as an
//! owned `Bytes` (events own their data), and taking that share of the
//! buffer costs about 100 instructions on a short head — more than the
//! 10 % over raw `httparse` the head parse may cost in all. What wins the
//! room back is that a head needs no per-field index (lookups walk its
//! lines, see [`Headers`](super::head::Headers)): this pass records only the
//! target, the version, where the fields start and how many there are; it
//! checks field values and the target sixteen bytes at a time, and names
//! eight.
//!
//! It accepts only the plain, strict form — no leading empty lines, single
//! spaces in the start line, `HTTP/1.0` or `HTTP/1.1`, CRLF everywhere,
//! token names with the colon right after, within the limits — and
//! answers `None` for anything else, which the careful path (the
//! [`HeadScanner`](super::head::HeadScanner) and `httparse`) then waits
//! for, parses or names the error of. So `httparse` stays the reference:
//! every head taken here is one the careful path takes the same way, which
//! the tests (by property) and the `http_request` and `http_response` fuzz
//! targets (whole against byte by byte) check by comparing the two.

use super::framing::Summary;
use super::head::{is_tchar, HeadLimits, Span, Version, MAX_HEADERS_CAP};

/// Where the parts of a whole head lie, found by [`whole_request`] or
/// [`whole_response`]: plain numbers, so the head is built once, in place,
/// when it is split off.
pub(super) struct Whole {
    /// The head's length, its final empty line included.
    pub len: usize,
    /// The request's target, or the response's reason.
    pub part: Span,
    /// The response's status code (0 for a request).
    pub status: u16,
    pub version: Version,
    /// Where the first field line starts.
    pub fields_at: u32,
    /// How many field lines there are.
    pub count: u32,
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
/// - the fields and the empty line as [`fields`] takes them.
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
    let (len, count) = fields::<SUM>(buf, line + 2, limits, summary)?;
    Some(Whole {
        len,
        part: Span::new(target_at, target_end),
        status: 0,
        version,
        fields_at: line as u32 + 2,
        count,
    })
}

/// The plain, strict response head at the front of `buf`, as
/// [`whole_request`] for requests:
/// - `HTTP/1.x SP status SP reason CRLF`: the status three digits from 100
///   to 999, the reason HTAB, SP and visible ASCII (httparse drops a
///   reason with obs-text, which is left to it), the status line no
///   longer than `max_line`;
/// - the fields and the empty line as [`fields`] takes them.
#[inline]
pub(super) fn whole_response(buf: &[u8], limits: &HeadLimits) -> Option<Whole> {
    let version = match buf.get(..9)? {
        b"HTTP/1.1 " => Version::Http11,
        b"HTTP/1.0 " => Version::Http10,
        _ => return None,
    };
    let status = match *buf.get(9..13)? {
        [h @ b'1'..=b'9', t @ b'0'..=b'9', o @ b'0'..=b'9', b' '] => {
            u16::from(h - b'0') * 100 + u16::from(t - b'0') * 10 + u16::from(o - b'0')
        }
        _ => return None,
    };
    let reason = buf.get(13..)?;
    let line = 13 + value_run(reason);
    if buf.get(line..line + 2)? != b"\r\n"
        || line > limits.max_line
        || !reason[..line - 13].is_ascii()
    {
        return None;
    }
    let mut unread = Summary::NONE;
    let (len, count) = fields::<false>(buf, line + 2, limits, &mut unread)?;
    Some(Whole {
        len,
        part: Span::new(13, line),
        status,
        version,
        fields_at: line as u32 + 2,
        count,
    })
}

/// The field lines from `at` to the end of the head, and the empty line
/// that ends it: the head's length and the number of fields.
///
/// Each field line is `name ":" OWS value OWS CRLF`, the name a token, the
/// value HTAB, SP, VCHAR or obs-text; at most `max_headers` of them, and
/// the whole head no longer than `max_head`.
#[inline(always)]
fn fields<const SUM: bool>(
    buf: &[u8],
    at: usize,
    limits: &HeadLimits,
    summary: &mut Summary,
) -> Option<(usize, u32)> {
    // Past `max_head` nothing can end the head: the pass stops there
    // without a check per line.
    let buf = buf.get(..limits.max_head).unwrap_or(buf);
    let mut count = 0;
    let mut p = at;
    loop {
        let rest = buf.get(p..)?;
        if rest.first() == Some(&b'\r') {
            // The empty line ends the head.
            if rest.get(1) != Some(&b'\n') || count > limits.max_headers.min(MAX_HEADERS_CAP) {
                return None;
            }
            return Some((p + 2, count as u32));
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

/// How many bytes at the front of `b` are token characters: letters,
/// digits and '-' (what most names are made of) a word at a time, then the
/// rest of the token set byte by byte.
#[inline(always)]
fn tchar_run(b: &[u8]) -> usize {
    let mut i = 0;
    while let Some(w) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(w.try_into().unwrap_or_default());
        let low = x & !HIGH;
        // Upper and lower case letters alike once 0x20 is set.
        let folded = low | lanes(0x20);
        let letter = (folded + lanes(0x80 - b'a')) & !(folded + lanes(0x80 - b'z' - 1));
        let digit = (low + lanes(0x80 - b'0')) & !(low + lanes(0x80 - b'9' - 1));
        let dash = !((low ^ lanes(b'-')) + lanes(0x7f));
        let marks = !((letter | digit | dash) & !x) & HIGH;
        if marks != 0 {
            i += (marks.trailing_zeros() / 8) as usize;
            break;
        }
        i += 8;
    }
    while b.get(i).is_some_and(|&c| is_tchar(c)) {
        i += 1;
    }
    i
}

/// Eight copies of a byte, one per lane of a word.
const fn lanes(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

const HIGH: u64 = lanes(0x80);

/// How many bytes at the front of `b` are not `bad`: sixteen at a time
/// while none is (a test per byte, without branches, that the compiler
/// turns into a few vector operations), then eight at a time by `word_bad` —
/// the same test on each byte of a word, marking each byte that fails by
/// the high bit of its lane — which finds where the run ends, then byte by
/// byte for the last few.
#[inline(always)]
fn run_of(b: &[u8], bad: impl Fn(u8) -> bool, word_bad: impl Fn(u64) -> u64) -> usize {
    let mut i = 0;
    while let Some(block) = b.get(i..i + 16) {
        if block.iter().fold(false, |any, &c| any | bad(c)) {
            break;
        }
        i += 16;
    }
    while let Some(w) = b.get(i..i + 8) {
        let marks = word_bad(u64::from_le_bytes(w.try_into().unwrap_or_default()));
        if marks != 0 {
            // Little-endian: the first byte is the lowest lane.
            return i + (marks.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while b.get(i).is_some_and(|&c| !bad(c)) {
        i += 1;
    }
    i
}

/// How many bytes at the front of `b` are visible ASCII, 0x21–0x7E (what a
/// request target may hold).
#[inline(always)]
fn visible_run(b: &[u8]) -> usize {
    run_of(
        b,
        |c| !(0x21..=0x7e).contains(&c),
        |x| {
            // Each lane's low seven bits plus a bias sets the lane's high bit
            // exactly when they reach a bound, and never carries into the
            // next lane (at most 0x7F + 0x5F).
            let low = x & !HIGH;
            let from_21 = low + lanes(0x80 - 0x21);
            let from_7f = low + lanes(0x80 - 0x7f);
            (x | !from_21 | from_7f) & HIGH
        },
    )
}

/// How many bytes at the front of `b` may be in a field value (or a
/// reason phrase): HTAB, SP, VCHAR and obs-text (0x80–0xFF) — anything
/// but the other controls and DEL.
#[inline(always)]
fn value_run(b: &[u8]) -> usize {
    run_of(
        b,
        |c| (c < 0x20) & (c != b'\t') | (c == 0x7f),
        |x| {
            let low = x & !HIGH;
            let from_20 = low + lanes(0x80 - 0x20);
            let is_7f = low + lanes(0x80 - 0x7f);
            // A lane is HTAB when its XOR with 0x09 is zero, and adding
            // 0x7F to a non-zero lane sets its high bit.
            let not_tab = (low ^ lanes(0x09)) + lanes(0x7f);
            ((!from_20 & not_tab) | is_7f) & !x & HIGH
        },
    )
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use proptest::prelude::*;

    use super::*;
    use crate::codec::head::{
        decode_request, decode_request_summarized, decode_response, parse_request, parse_response,
        HeadScanner,
    };
    use crate::error::ProtocolError;

    const SMALL: HeadLimits = HeadLimits {
        max_line: 24,
        max_head: 64,
        max_headers: 2,
    };

    /// What the careful path alone makes of `bytes`: the scanner delimits,
    /// httparse parses. The reference every fast-path answer must match.
    fn careful<H>(
        bytes: &[u8],
        mut scan: HeadScanner,
        limits: &HeadLimits,
        parse: impl Fn(bytes::Bytes, &HeadLimits) -> Result<H, ProtocolError>,
    ) -> (Result<Option<H>, ProtocolError>, usize) {
        let mut buf = BytesMut::from(bytes);
        let head = match scan.scan(&buf, limits) {
            Ok(Some(len)) => parse(buf.split_to(len).freeze(), limits).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        (head, buf.len())
    }

    /// The request decode (fast path first) agrees with the careful path
    /// on `bytes`: the same head, the same bytes left, the same error.
    fn request_agrees(bytes: &[u8], limits: &HeadLimits) {
        let (expect, left) = careful(bytes, HeadScanner::request(), limits, parse_request);
        let mut buf = BytesMut::from(bytes);
        let got = decode_request(&mut buf, &mut HeadScanner::request(), limits);
        assert_eq!(got, expect, "{:?}", String::from_utf8_lossy(bytes));
        if let (Ok(Some(g)), Ok(Some(e))) = (&got, &expect) {
            assert_eq!(g.raw(), e.raw());
            assert_eq!(buf.len(), left);
        }
        let mut buf = BytesMut::from(bytes);
        let summed = decode_request_summarized(&mut buf, &mut HeadScanner::request(), limits);
        match (summed, got) {
            (Ok(Some((h, sum))), Ok(Some(g))) => {
                assert_eq!(h, g);
                assert_eq!(sum, Summary::of(h.headers()));
            }
            (s, g) => assert_eq!(s.map(|o| o.map(|(h, _)| h)), g),
        }
    }

    fn response_agrees(bytes: &[u8], limits: &HeadLimits) {
        let (expect, left) = careful(bytes, HeadScanner::response(), limits, parse_response);
        let mut buf = BytesMut::from(bytes);
        let got = decode_response(&mut buf, &mut HeadScanner::response(), limits);
        assert_eq!(got, expect, "{:?}", String::from_utf8_lossy(bytes));
        if let (Ok(Some(g)), Ok(Some(e))) = (&got, &expect) {
            assert_eq!(g.raw(), e.raw());
            assert_eq!(buf.len(), left);
        }
    }

    fn takes_request(bytes: &[u8], limits: &HeadLimits) -> bool {
        let mut summary = Summary::NONE;
        whole_request::<true>(bytes, limits, &mut summary).is_some()
    }

    /// The plain forms are taken by the fast path (so the benches time
    /// it), and the unusual ones are left to the careful path, which takes
    /// some of them and refuses others — the same way in both cases.
    #[test]
    fn plain_heads_are_taken_and_the_rest_left_to_the_careful_path() {
        let d = HeadLimits::default();
        for plain in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"POST /a?b=c HTTP/1.0\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            b"m-1 * HTTP/1.1\r\nX:\r\nY: \t a b \t\r\nZ:\x80\xff\r\n\r\n",
            b"GET /0123456789abcdef0123456789 HTTP/1.1\r\nA: 0123456789abcdef0123456789\r\n\r\n",
        ] {
            assert!(
                takes_request(plain, &d),
                "{:?}",
                String::from_utf8_lossy(plain)
            );
            request_agrees(plain, &d);
        }
        for unusual in [
            &b"\r\nGET / HTTP/1.1\r\n\r\n"[..],
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
            b"GET / HTTP/1.1\r\nA : b\r\n\r\n",
            b"GET / HTTP/1.1\r\n A: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",
            b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1\r\n\n",
            b"G\xc3T / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n",
        ] {
            assert!(
                !takes_request(unusual, &d),
                "{:?}",
                String::from_utf8_lossy(unusual)
            );
            request_agrees(unusual, &d);
        }
        // Each limit, just met and just passed.
        for (head, taken) in [
            (&b"GET /4567890123 HTTP/1.1\r\n\r\n"[..], true),
            (b"GET /45678901234 HTTP/1.1\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", false),
            (
                b"GET / HTTP/1.1\r\nA: 01234567890123456789012345678901234567890\r\n\r\n",
                true,
            ),
            (
                b"GET / HTTP/1.1\r\nA: 012345678901234567890123456789012345678901\r\n\r\n",
                false,
            ),
        ] {
            assert_eq!(
                takes_request(head, &SMALL),
                taken,
                "{:?}",
                String::from_utf8_lossy(head)
            );
            request_agrees(head, &SMALL);
        }
    }

    #[test]
    fn plain_responses_are_taken_and_the_rest_left_to_the_careful_path() {
        let d = HeadLimits::default();
        for (head, taken) in [
            (&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"[..], true),
            (b"HTTP/1.0 404 Not\tFound \r\n\r\n", true),
            (b"HTTP/1.1 204 \r\n\r\n", true),
            (b"HTTP/1.1 204\r\n\r\n", false),
            (b"HTTP/1.1 200 \xe9t\xe9\r\n\r\n", false),
            (b"HTTP/1.1 099 Low\r\n\r\n", false),
            (b"HTTP/1.1 20 OK\r\n\r\n", false),
            (b"HTTP/1.1  200 OK\r\n\r\n", false),
            (b"HTTP/1.1 200 OK\nA: b\r\n\r\n", false),
            (b"HTTP/2 200 OK\r\n\r\n", false),
        ] {
            let t = whole_response(head, &d).is_some();
            assert_eq!(t, taken, "{:?}", String::from_utf8_lossy(head));
            response_agrees(head, &d);
        }
    }

    /// Bytes that make heads: mostly well-formed pieces, with the bytes
    /// and pieces that break a rule mixed in.
    fn piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => prop::sample::select(vec![
                &b"GET"[..], b"POST", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 200 OK",
                b"/", b"/a?b", b"Host", b"Content-Length", b"Transfer-Encoding", b"Connection",
                b"close", b"chunked", b"12", b"x-y", b"keep-alive, Upgrade", b"Upgrade",
                b"Expect", b"100-continue",
            ])
            .prop_map(<[u8]>::to_vec),
            4 => prop::sample::select(vec![
                &b" "[..], b":", b": ", b"\r\n", b"\r\n\r\n", b"\t", b",",
            ])
            .prop_map(<[u8]>::to_vec),
            1 => prop::sample::select(vec![
                &b"\n"[..], b"\r", b"\x7f", b"\x80", b"\xff", b"\x00", b"\x01", b"  ", b" :",
            ])
            .prop_map(<[u8]>::to_vec),
            1 => prop::collection::vec(any::<u8>(), 0..20),
            // Long runs, which the sixteen-byte blocks check, now and then
            // with a byte no value may hold.
            1 => prop::collection::vec(
                prop::sample::select(b"aZ9-/ \t\t\x80\xff\x7f\x00".to_vec()),
                12..48,
            ),
        ]
    }

    fn limits() -> impl Strategy<Value = HeadLimits> {
        prop_oneof![
            1 => Just(HeadLimits::default()),
            1 => small_limits(),
        ]
    }

    fn small_limits() -> impl Strategy<Value = HeadLimits> {
        (
            prop::sample::select(vec![4, 16, 24, 8192]),
            prop::sample::select(vec![16, 40, 64, 65536]),
            prop::sample::select(vec![0, 1, 2, 100]),
        )
            .prop_map(|(max_line, max_head, max_headers)| HeadLimits {
                max_line,
                max_head,
                max_headers,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Whatever the bytes and limits, a request or response decode
        /// agrees with the careful path.
        #[test]
        fn pieced_heads_agree_with_the_careful_path(
            response in any::<bool>(),
            plain_start in any::<bool>(),
            pieces in prop::collection::vec(piece(), 0..24),
            limits in limits(),
        ) {
            let start: &[u8] = match (plain_start, response) {
                (false, _) => b"",
                (true, false) => b"GET / HTTP/1.1\r\n",
                (true, true) => b"HTTP/1.1 200 OK\r\n",
            };
            let mut bytes = start.to_vec();
            bytes.extend(pieces.concat());
            if response {
                response_agrees(&bytes, &limits);
            } else {
                request_agrees(&bytes, &limits);
            }
        }

        /// Heads built field by field, so that most are whole and many
        /// plain: each field's value drawn from bytes a value may hold and
        /// a few it may not.
        #[test]
        fn field_by_field_heads_agree_with_the_careful_path(
            response in any::<bool>(),
            fields in prop::collection::vec((
                prop::sample::select(vec![&b"Host"[..], b"Content-Length", b"Connection", b"X-A", b"", b"A b"]),
                prop::sample::select(vec![&b": "[..], b":", b":\t", b" :"]),
                prop::collection::vec(
                    prop_oneof![
                        30 => prop::sample::select(b"aZ09-,; \t\x80\xff".to_vec()),
                        1 => prop::sample::select(b"\x7f\x00\r\n".to_vec()),
                    ],
                    0..40,
                ),
                prop::sample::select(vec![&b"\r\n"[..], b"\r\n", b"\r\n", b"\n"]),
            ), 0..6),
            end in prop::sample::select(vec![&b"\r\n"[..], b"\r\nbody", b"\n", b""]),
            limits in limits(),
        ) {
            let mut bytes = if response { b"HTTP/1.1 200 OK\r\n".to_vec() } else { b"GET /x HTTP/1.1\r\n".to_vec() };
            for (name, sep, value, eol) in fields {
                bytes.extend([name, sep, &value[..], eol].concat());
            }
            bytes.extend(end);
            if response {
                response_agrees(&bytes, &limits);
            } else {
                request_agrees(&bytes, &limits);
            }
        }
    }

    /// The lane tests agree with the byte sets they stand for, for every
    /// byte in every lane.
    #[test]
    fn lane_tests_match_the_byte_sets() {
        // 40 bytes: every byte is tried in a sixteen-byte block, in a word
        // and in the byte-by-byte tail, at every place in each.
        const N: usize = 40;
        for c in 0..=255u8 {
            let visible = (0x21..=0x7e).contains(&c);
            let value = c == b'\t' || (0x20..=0x7e).contains(&c) || c >= 0x80;
            let token = is_tchar(c);
            for at in 0..N {
                let mut w = [b'a'; N];
                w[at] = c;
                for len in [at + 1, N] {
                    let run = |ok: bool| if ok { len } else { at };
                    let b = &w[..len];
                    assert_eq!(
                        visible_run(b),
                        run(visible),
                        "visible {c:#x} at {at} of {len}"
                    );
                    assert_eq!(value_run(b), run(value), "value {c:#x} at {at} of {len}");
                    assert_eq!(tchar_run(b), run(token), "token {c:#x} at {at} of {len}");
                }
            }
        }
    }
}
