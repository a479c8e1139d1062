//! Message-body framing (RFC 9112 §6): how long a body is, decided from
//! the head alone, and the connection-persistence rules (§9.3).

use super::head::{trim, Headers, RequestHead, ResponseHead, Version};
use crate::error::ProtocolError;

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyKind {
    /// No body at all.
    Empty,
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// The body runs until the connection closes (responses only).
    CloseDelimited,
}

impl BodyKind {
    /// Whether no body bytes follow.
    pub fn is_empty(self) -> bool {
        matches!(self, BodyKind::Empty | BodyKind::Length(0))
    }
}

/// Parses a Content-Length value: ASCII digits only, no sign, at most 19
/// digits.
///
/// # Errors
/// [`ProtocolError::BadContentLength`].
pub fn parse_content_length(v: &[u8]) -> Result<u64, ProtocolError> {
    let v = trim(v);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(ProtocolError::BadContentLength);
    }
    Ok(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Reads Transfer-Encoding: `Ok(None)` without it, `Ok(Some(true))` when
/// chunked is the final (and only) coding, `Ok(Some(false))` when the
/// final coding is something else.
fn transfer_encoding(h: &Headers) -> Result<Option<bool>, ProtocolError> {
    let mut any = false;
    let mut chunked_seen = false;
    let mut last_chunked = false;
    // Anything but chunked (gzip, deflate, compress, the retired identity)
    // is a coding this implementation does not decode.
    for v in h.get_all("transfer-encoding") {
        for coding in v.split(|&b| b == b',') {
            let c = trim(coding);
            if c.is_empty() {
                continue;
            }
            any = true;
            // Parameters are not allowed on chunked; any other coding is
            // unknown to us.
            if c.eq_ignore_ascii_case(b"chunked") {
                if chunked_seen {
                    return Err(ProtocolError::ChunkedNotFinal);
                }
                chunked_seen = true;
                last_chunked = true;
            } else {
                if chunked_seen {
                    return Err(ProtocolError::ChunkedNotFinal);
                }
                return Err(ProtocolError::UnknownTransferCoding);
            }
        }
    }
    if h.get("transfer-encoding").is_some() && !any {
        return Err(ProtocolError::UnknownTransferCoding);
    }
    Ok(any.then_some(last_chunked))
}

/// What the fields of a head say about framing and persistence, found in
/// one pass over the fields (names compared by length first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// How many Host fields.
    pub hosts: usize,
    /// The Content-Length, or the first reason it is unusable.
    pub content_length: Result<Option<u64>, ProtocolError>,
    /// Whether any Transfer-Encoding field is present.
    pub transfer_encoding: bool,
    /// `Connection: close`.
    pub close: bool,
    /// `Connection: keep-alive`.
    pub keep_alive: bool,
    /// `Connection: upgrade`.
    pub connection_upgrade: bool,
    /// An `Upgrade` field is present.
    pub upgrade: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
}

impl Summary {
    /// What no fields say.
    pub const NONE: Summary = Summary {
        hosts: 0,
        content_length: Ok(None),
        transfer_encoding: false,
        close: false,
        keep_alive: false,
        connection_upgrade: false,
        upgrade: false,
        expect_continue: false,
    };

    /// Reads the fields once.
    pub fn of(h: &Headers) -> Summary {
        let mut s = Summary::NONE;
        for (n, v) in h.iter_bytes() {
            s.add(n, v);
        }
        s
    }

    /// Takes one more field into account (the server's parser calls this
    /// for each field as it goes, through a prefilter, so a request's
    /// summary costs no second pass over its head). Inlined: a call's
    /// register saves would cost more than the look at most fields.
    ///
    /// `v` may still have the whitespace around it (the one-pass parse
    /// leaves it): each value read here is trimmed where it is read.
    #[inline(always)]
    pub fn add(&mut self, n: &[u8], v: &[u8]) {
        // The length first: any other field costs a jump and at most one
        // compare of a few words.
        match n.len() {
            4 if named(n, b"host") => self.hosts += 1,
            14 if named(n, b"content-length") => {
                // Duplicates are refused even when equal
                // (`Content-Length: 5, 5` too): a message two parsers
                // could read differently is not accepted.
                self.content_length = match self.content_length {
                    Ok(None) if !v.contains(&b',') => parse_content_length(v).map(Some),
                    Ok(_) => Err(ProtocolError::MultipleContentLength),
                    e => e,
                };
            }
            17 if named(n, b"transfer-encoding") => self.transfer_encoding = true,
            // The common value is one token: if it is one of those read
            // (which hold no comma), the list is just that token, noted by
            // the guard; otherwise the list is read token by token.
            10 if named(n, b"connection") && !self.connection_token(trim(v)) => {
                for t in v.split(|&b| b == b',') {
                    self.connection_token(trim(t));
                }
            }
            7 if named(n, b"upgrade") => self.upgrade = true,
            6 if named(n, b"expect") => self.expect_continue |= lower_eq(trim(v), b"100-continue"),
            _ => {}
        }
    }

    /// Notes one `Connection` token; whether it was one of those read.
    #[inline(always)]
    fn connection_token(&mut self, t: &[u8]) -> bool {
        let (flag, is) = match t.len() {
            5 => (&mut self.close, lower_eq(t, b"close")),
            10 => (&mut self.keep_alive, lower_eq(t, b"keep-alive")),
            7 => (&mut self.connection_upgrade, lower_eq(t, b"upgrade")),
            _ => return false,
        };
        *flag |= is;
        is
    }

    /// [`Summary::add`] for a parser's pass over the fields: a field whose
    /// length and first letter rule it out costs one table look, inline;
    /// the few others are read by an out-of-line call, so the pass keeps
    /// few values live (the summary stays in memory).
    #[inline(always)]
    pub(crate) fn add_if_framing(&mut self, n: &[u8], v: &[u8]) {
        /// The first letter (lowercase) of the field of each length that
        /// `add` reads; longer names share a slot (a false positive, which
        /// `add` then ignores).
        const FIRST: [u8; 32] = {
            let mut t = [0xff; 32];
            t[4] = b'h';
            t[6] = b'e';
            t[7] = b'u';
            t[10] = b'c';
            t[14] = b'c';
            t[17] = b't';
            t
        };
        if n.first().is_some_and(|b| FIRST[n.len() % 32] == b | 0x20) {
            self.add_out_of_line(n, v);
        }
    }

    #[inline(never)]
    fn add_out_of_line(&mut self, n: &[u8], v: &[u8]) {
        self.add(n, v);
    }

    /// Whether the sender wants the connection kept open (RFC 9112 §9.3).
    pub fn keep_alive(&self, version: Version) -> bool {
        !self.close && (version == Version::Http11 || self.keep_alive)
    }
}

/// Whether the field name `n` is `name`, ignoring ASCII case.
#[inline(always)]
fn named<const N: usize>(n: &[u8], name: &[u8; N]) -> bool {
    lower_eq(n, name)
}

/// Whether `v` is `lower`, ignoring ASCII case, where `lower` is made of
/// lowercase letters, digits and '-' only (the names and tokens looked for
/// here). Exact for any bytes of `v`, and a few word compares when the
/// length is fixed.
///
/// OR-ing 0x20 maps a byte `b` onto such a byte `t` only when `b` is `t`
/// or `t - 0x20`: for a letter that is its other case; for '-' and the
/// digits it is a control byte (CR, 0x10-0x19). So "equal once OR-ed, and
/// no byte below 0x20" is exactly "equal ignoring ASCII case".
#[inline(always)]
fn lower_eq<const N: usize>(v: &[u8], lower: &[u8; N]) -> bool {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    if v.len() != N {
        return false;
    }
    // Words of 8 bytes (4 or 1 for shorter strings), the last one ending
    // at N (it may overlap the one before); `lower`'s fold to constants.
    let w = if N >= 8 {
        8
    } else if N >= 4 {
        4
    } else {
        1
    };
    let mask = if w == 8 { u64::MAX } else { (1 << (8 * w)) - 1 };
    let (mut diff, mut ctl) = (0, 0);
    let mut at = 0;
    while at < N {
        let from = at.min(N - w);
        let (x, t) = (word(v, from, w), word(lower, from, w));
        diff |= ((x | (ONES * 0x20)) ^ t) & mask;
        // Whether some byte is below 0x20: exact as a yes/no (a borrow
        // only starts at such a byte and runs towards the high bytes,
        // which the mask drops past the word's width).
        ctl |= x.wrapping_sub(ONES * 0x20) & !x & HIGH & mask;
        at += w;
    }
    diff == 0 && ctl == 0
}

/// `w` (at most 8) bytes of `s` from `at`, little-endian (zero when out
/// of range, which callers never ask for).
#[inline(always)]
fn word(s: &[u8], at: usize, w: usize) -> u64 {
    let mut b = [0u8; 8];
    if let (Some(src), Some(dst)) = (s.get(at..at + w), b.get_mut(..w)) {
        dst.copy_from_slice(src);
    }
    u64::from_le_bytes(b)
}

/// The body framing of a request (RFC 9112 §6.3), with the checks a server
/// owes: TE with CL, unknown codings, chunked not final, TE in HTTP/1.0,
/// a missing or repeated Host in HTTP/1.1.
///
/// # Errors
/// The head's framing is ambiguous or unsupported.
pub fn request_body(head: &RequestHead) -> Result<BodyKind, ProtocolError> {
    request_body_with(head, &Summary::of(head.headers()))
}

/// [`request_body`] with the fields already read.
///
/// # Errors
/// As [`request_body`].
pub fn request_body_with(head: &RequestHead, s: &Summary) -> Result<BodyKind, ProtocolError> {
    if head.version() == Version::Http11 && s.hosts != 1 {
        return Err(ProtocolError::BadHost);
    }
    let cl = s.content_length?;
    if s.transfer_encoding {
        if cl.is_some() {
            return Err(ProtocolError::TransferEncodingAndContentLength);
        }
        if head.version() == Version::Http10 {
            return Err(ProtocolError::TransferEncodingHttp10);
        }
        return match transfer_encoding(head.headers())? {
            Some(true) => Ok(BodyKind::Chunked),
            _ => Err(ProtocolError::ChunkedNotFinal),
        };
    }
    Ok(match cl {
        Some(0) | None => BodyKind::Empty,
        Some(n) => BodyKind::Length(n),
    })
}

/// The body framing of a response to a request with `method`
/// (RFC 9112 §6.3): none for HEAD, 1xx, 204 and 304, none (a tunnel) for a
/// 2xx to CONNECT; chunked, then Content-Length, else close-delimited.
///
/// # Errors
/// Ambiguous framing (TE with CL, several Content-Lengths).
pub fn response_body(head: &ResponseHead, method: &str) -> Result<BodyKind, ProtocolError> {
    let s = head.status();
    if method == "HEAD" || (100..200).contains(&s) || s == 204 || s == 304 {
        return Ok(BodyKind::Empty);
    }
    if method == "CONNECT" && (200..300).contains(&s) {
        return Ok(BodyKind::Empty);
    }
    let h = head.headers();
    let sum = Summary::of(h);
    let cl = sum.content_length?;
    if sum.transfer_encoding {
        if cl.is_some() {
            return Err(ProtocolError::TransferEncodingAndContentLength);
        }
        return Ok(match transfer_encoding(h) {
            Ok(Some(true)) => BodyKind::Chunked,
            // A final coding other than chunked: read until close.
            _ => BodyKind::CloseDelimited,
        });
    }
    Ok(match cl {
        Some(0) => BodyKind::Empty,
        Some(n) => BodyKind::Length(n),
        None => BodyKind::CloseDelimited,
    })
}

/// Whether the sender of a message with this version and fields wants the
/// connection kept open after it (RFC 9112 §9.3).
pub fn wants_keep_alive(version: Version, h: &Headers) -> bool {
    Summary::of(h).keep_alive(version)
}

/// Whether a status may carry a body at all.
pub fn status_has_body(status: u16) -> bool {
    !((100..200).contains(&status) || status == 204 || status == 304)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-wise comparison agrees with `eq_ignore_ascii_case` for
    /// every byte at every position of every name and token looked for,
    /// and refuses other lengths.
    #[test]
    fn folded_compare_is_exact() {
        fn check<const N: usize>(target: &[u8; N]) {
            for at in 0..N {
                for b in 0..=255u8 {
                    let mut v = *target;
                    v[at] = b;
                    assert_eq!(
                        lower_eq(&v, target),
                        v.eq_ignore_ascii_case(target),
                        "byte {b:#x} at {at} of {:?}",
                        core::str::from_utf8(target)
                    );
                    let upper = v.to_ascii_uppercase();
                    assert_eq!(lower_eq(&upper, target), upper.eq_ignore_ascii_case(target));
                }
            }
            assert!(!lower_eq(&target[..N - 1], target));
            let mut longer = target.to_vec();
            longer.push(target[0]);
            assert!(!lower_eq(&longer, target));
        }
        check(b"host");
        check(b"content-length");
        check(b"transfer-encoding");
        check(b"connection");
        check(b"upgrade");
        check(b"expect");
        check(b"close");
        check(b"keep-alive");
        check(b"100-continue");
    }

    /// `Connection` values read as a comma-separated list, token by
    /// token, whatever shortcut the one-token case takes.
    #[test]
    fn connection_tokens_are_read_as_a_list() {
        fn reference(v: &[u8]) -> (bool, bool, bool) {
            let has = |tok: &[u8]| {
                v.split(|&b| b == b',')
                    .any(|t| trim(t).eq_ignore_ascii_case(tok))
            };
            (has(b"close"), has(b"keep-alive"), has(b"upgrade"))
        }
        for v in [
            &b"close"[..],
            b"Keep-Alive",
            b" UPGRADE\t",
            b"close, keep-alive",
            b"keep-alive,upgrade",
            b"close,",
            b",close",
            b"closed",
            b"x, keep-alive",
            b"upgrade , close ,keep-alive",
            b"",
            b",",
            b"keep-alivex",
            b"clos\xc5",
        ] {
            let mut s = Summary::NONE;
            s.add(b"Connection", v);
            assert_eq!(
                (s.close, s.keep_alive, s.connection_upgrade),
                reference(v),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
    }

    /// The prefilter lets through every field `add` reads, in any case,
    /// so the summary a parser reads with it is the full one.
    #[test]
    fn prefilter_keeps_every_field_add_reads() {
        let fields: &[(&str, &[u8])] = &[
            ("host", b"h"),
            ("content-length", b"5"),
            ("transfer-encoding", b"chunked"),
            ("connection", b"close, upgrade, keep-alive"),
            ("upgrade", b"websocket"),
            ("expect", b"100-continue"),
        ];
        for &(name, value) in fields {
            for n in [
                name.to_string(),
                name.to_ascii_uppercase(),
                name[..1].to_ascii_uppercase() + &name[1..],
            ] {
                let (mut all, mut some) = (Summary::NONE, Summary::NONE);
                all.add(n.as_bytes(), value);
                some.add_if_framing(n.as_bytes(), value);
                assert_ne!(all, Summary::NONE, "{n}");
                assert_eq!(some, all, "{n}");
            }
        }
    }
}
