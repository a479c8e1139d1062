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
    /// for each field as it goes, so a request's summary costs no second
    /// pass over its head).
    pub fn add(&mut self, n: &[u8], v: &[u8]) {
        // OR-ing 0x20 folds the case of a letter and leaves '-' alone; no
        // other token byte lands on a letter or '-', so this is an exact
        // case-insensitive comparison with these names, and it stops at
        // the first byte for most other names of the same length.
        let is = |name: &str| n.iter().zip(name.as_bytes()).all(|(a, b)| a | 0x20 == *b);
        // Length and first letter first: any other field costs a jump.
        match (n.len(), n.first().map_or(0, |b| b | 0x20)) {
            (4, b'h') if is("host") => self.hosts += 1,
            (14, b'c') if is("content-length") => {
                // Duplicates are refused even when equal
                // (`Content-Length: 5, 5` too): a message two parsers
                // could read differently is not accepted.
                self.content_length = match self.content_length {
                    Ok(None) if !v.contains(&b',') => parse_content_length(v).map(Some),
                    Ok(_) => Err(ProtocolError::MultipleContentLength),
                    e => e,
                };
            }
            (17, b't') if is("transfer-encoding") => self.transfer_encoding = true,
            (10, b'c') if is("connection") => {
                for t in v.split(|&b| b == b',') {
                    let t = trim(t);
                    self.close |= t.eq_ignore_ascii_case(b"close");
                    self.keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
                    self.connection_upgrade |= t.eq_ignore_ascii_case(b"upgrade");
                }
            }
            (7, b'u') if is("upgrade") => self.upgrade = true,
            (6, b'e') if is("expect") => {
                self.expect_continue |= trim(v).eq_ignore_ascii_case(b"100-continue")
            }
            _ => {}
        }
    }

    /// Whether the sender wants the connection kept open (RFC 9112 §9.3).
    pub fn keep_alive(&self, version: Version) -> bool {
        !self.close && (version == Version::Http11 || self.keep_alive)
    }
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
