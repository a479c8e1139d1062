//! Message heads: finding the end of a head incrementally
//! ([`HeadScanner`]), parsing request and response heads into zero-copy
//! [`RequestHead`] / [`ResponseHead`] values (the head is one `Bytes`; the
//! method, target and every header field are ranges of it), and
//! serializing heads.
//!
//! A head that arrives whole and in the plain strict form is parsed by
//! one pass of our own (`one_pass`); any other — in pieces, unusual or
//! malformed — by the scanner and `httparse`, which name the error. The
//! two agree on every head both take (tests and fuzz targets compare
//! them).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use core::mem::MaybeUninit;

use super::framing::Summary;
use super::one_pass::{whole_request, whole_response, Whole};
use crate::error::{Error, ProtocolError};

/// The most header fields any configuration may allow (the size of the
/// `httparse` header array on the stack).
pub const MAX_HEADERS_CAP: usize = 256;

/// An HTTP/1.x version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// HTTP/1.0: close after each message unless `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: persistent unless `Connection: close`.
    Http11,
}

impl Version {
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// Bounds on a head. A head over a bound is refused at the earliest byte
/// that proves it, never buffered further.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// The longest request line or status line (414 for a request line).
    pub max_line: usize,
    /// The longest head: start line, fields and the empty line (431).
    pub max_head: usize,
    /// The most header fields, at most [`MAX_HEADERS_CAP`] (431).
    pub max_headers: usize,
}

impl Default for HeadLimits {
    /// 8 KiB line, 64 KiB head, 100 fields.
    fn default() -> Self {
        HeadLimits {
            max_line: 8 * 1024,
            max_head: 64 * 1024,
            max_headers: 100,
        }
    }
}

/// Where a part of a head lies in its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    pub(super) fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    fn of(base: &[u8], part: &[u8]) -> Span {
        // Both slices come from the same buffer: the offset is a plain
        // address difference, no unsafe needed.
        let start = (part.as_ptr() as usize).saturating_sub(base.as_ptr() as usize);
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

/// Header fields of a head or trailer section, in the order received.
/// Names compare case-insensitively.
///
/// The fields are the lines of one shared `Bytes` that the parser has
/// already checked (one field per line, names are tokens, no folding), so
/// no index of them is built: a lookup walks the lines. That keeps a head
/// free of any allocation but its bytes, which costs less than an index
/// for the handful of lookups a request gets.
#[derive(Clone, Default)]
pub struct Headers {
    buf: Bytes,
    /// Where the first field line starts in `buf`.
    start: u32,
    /// How many field lines follow it.
    count: u32,
}

/// Equal when they hold the same fields in the same order, wherever
/// their bytes come from.
impl PartialEq for Headers {
    fn eq(&self, other: &Headers) -> bool {
        self.count == other.count && self.iter_bytes().eq(other.iter_bytes())
    }
}

impl Eq for Headers {}

impl core::fmt::Debug for Headers {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut l = f.debug_list();
        for (n, v) in self.iter() {
            l.entry(&(n, alloc::string::String::from_utf8_lossy(v)));
        }
        l.finish()
    }
}

/// The field lines of a checked section: each `name:value` up to its LF
/// (a CR before it is not part of the value).
#[derive(Clone)]
struct FieldLines<'a> {
    rest: &'a [u8],
    left: u32,
}

impl<'a> FieldLines<'a> {
    /// The next whole line, without its line end.
    fn next_line(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (line, rest) = match memchr::memchr(b'\n', self.rest) {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
            None => (self.rest, &[][..]),
        };
        self.rest = rest;
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

impl<'a> Iterator for FieldLines<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let line = self.next_line()?;
        // A name is a token, which holds no colon: the first one ends it.
        let colon = memchr::memchr(b':', line).unwrap_or(line.len());
        let (name, value) = line.split_at(colon);
        Some((name, trim(value.get(1..).unwrap_or_default())))
    }
}

impl Headers {
    fn lines(&self) -> FieldLines<'_> {
        FieldLines {
            rest: self.buf.get(self.start as usize..).unwrap_or_default(),
            left: self.count,
        }
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every field as (name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.lines().map(|(n, v)| {
            // Names were checked to be tokens (ASCII) by the parser.
            (core::str::from_utf8(n).unwrap_or(""), v)
        })
    }

    /// Every field as (name, value) bytes, in order: what the lookups
    /// use, as names need no UTF-8 check to be compared.
    pub fn iter_bytes(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.lines()
    }

    /// The values of every field named `name`.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut lines = self.lines();
        core::iter::from_fn(move || {
            while let Some(line) = lines.next_line() {
                if let Some(v) = value_if_named(line, name.as_bytes()) {
                    return Some(v);
                }
            }
            None
        })
    }

    /// The value of the first field named `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let mut lines = self.lines();
        while let Some(line) = lines.next_line() {
            if let Some(v) = value_if_named(line, name.as_bytes()) {
                return Some(v);
            }
        }
        None
    }

    /// The value of the first field named `name`, if it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| core::str::from_utf8(v).ok())
    }

    /// Whether a comma-separated list field (`Connection`, `Upgrade`,
    /// `Transfer-Encoding`, …) holds `token`, over all its lines,
    /// case-insensitively.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name).any(|v| {
            v.split(|&b| b == b',')
                .any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// The bytes the fields point into.
    pub fn raw(&self) -> &Bytes {
        &self.buf
    }
}

/// The value of a field line if its name is `name`: the name is compared
/// in place, so a line of another name costs one comparison.
fn value_if_named<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let (n, rest) = line.split_at_checked(name.len())?;
    match rest {
        [b':', value @ ..] if n.eq_ignore_ascii_case(name) => Some(trim(value)),
        _ => None,
    }
}

/// Trims optional whitespace (SP, HTAB) at both ends.
pub(crate) fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// A parsed request head. Cheap to clone (a reference-counted buffer and
/// a few offsets into it).
#[derive(Clone)]
pub struct RequestHead {
    /// The method is what precedes it, less the one SP between them: the
    /// head starts at the method (leading empty lines are not kept).
    target: Span,
    version: Version,
    headers: Headers,
}

/// Equal when method, target, version and fields are (the parts are
/// compared as text, not as where they lie in the head).
impl PartialEq for RequestHead {
    fn eq(&self, other: &RequestHead) -> bool {
        self.version == other.version
            && self.method_bytes() == other.method_bytes()
            && self.target() == other.target()
            && self.headers == other.headers
    }
}

impl Eq for RequestHead {}

impl core::fmt::Debug for RequestHead {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RequestHead")
            .field("method", &self.method())
            .field("target", &self.target())
            .field("version", &self.version)
            .field("headers", &self.headers)
            .finish()
    }
}

impl RequestHead {
    /// The method (`GET`, `POST` …), case-sensitive as sent.
    pub fn method(&self) -> &str {
        core::str::from_utf8(self.method_bytes()).unwrap_or("")
    }

    fn method_bytes(&self) -> &[u8] {
        let end = (self.target.start as usize).saturating_sub(1);
        self.headers.buf.get(..end).unwrap_or_default()
    }

    /// The request target as sent (`/path?query`, `host:port` for
    /// CONNECT, an absolute URI for proxies, `*`).
    pub fn target(&self) -> &str {
        core::str::from_utf8(self.target.get(&self.headers.buf)).unwrap_or("")
    }

    /// The version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The header fields.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The value of the first field named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }

    /// Whether the method is HEAD.
    pub fn is_head(&self) -> bool {
        self.method_bytes() == b"HEAD"
    }

    /// Whether the method is CONNECT.
    pub fn is_connect(&self) -> bool {
        self.method_bytes() == b"CONNECT"
    }

    /// The whole head as received (request line to the empty line).
    pub fn raw(&self) -> &Bytes {
        &self.headers.buf
    }
}

/// A parsed response head.
#[derive(Clone)]
pub struct ResponseHead {
    status: u16,
    reason: Span,
    version: Version,
    headers: Headers,
}

/// Equal when status, reason, version and fields are.
impl PartialEq for ResponseHead {
    fn eq(&self, other: &ResponseHead) -> bool {
        self.status == other.status
            && self.version == other.version
            && self.reason() == other.reason()
            && self.headers == other.headers
    }
}

impl Eq for ResponseHead {}

impl core::fmt::Debug for ResponseHead {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ResponseHead")
            .field("status", &self.status)
            .field("reason", &self.reason())
            .field("version", &self.version)
            .field("headers", &self.headers)
            .finish()
    }
}

impl ResponseHead {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason phrase (may be empty; carries no meaning).
    pub fn reason(&self) -> &str {
        core::str::from_utf8(self.reason.get(&self.headers.buf)).unwrap_or("")
    }

    /// The version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The header fields.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The value of the first field named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }

    /// Whether this is an informational (1xx) response.
    pub fn is_informational(&self) -> bool {
        (100..200).contains(&self.status)
    }

    /// The whole head as received.
    pub fn raw(&self) -> &Bytes {
        &self.headers.buf
    }
}

/// Finds the end of a head in a growing buffer without rescanning: it
/// remembers how far it looked. It checks line endings (no bare LF or CR),
/// obsolete folding and the limits as the bytes arrive.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeadScanner {
    pos: usize,
    line_start: usize,
    /// The start line has ended (leading empty lines do not count).
    started: bool,
    lines: usize,
    /// Whether this scans a request (414) or a response head.
    response: bool,
}

impl HeadScanner {
    /// A scanner for request heads.
    pub fn request() -> Self {
        HeadScanner::default()
    }

    /// A scanner for response heads.
    pub fn response() -> Self {
        HeadScanner {
            response: true,
            ..HeadScanner::default()
        }
    }

    /// Whether nothing of this head has been looked at yet.
    pub fn is_fresh(&self) -> bool {
        self.pos == 0
    }

    /// Forgets progress, for the next head.
    pub fn reset(&mut self) {
        *self = HeadScanner {
            response: self.response,
            ..HeadScanner::default()
        };
    }

    /// Looks at the bytes of `buf` not seen before. Returns the length of
    /// the head once its empty line has arrived.
    ///
    /// # Errors
    /// The head breaks a line rule or a limit.
    pub fn scan(
        &mut self,
        buf: &[u8],
        limits: &HeadLimits,
    ) -> Result<Option<usize>, ProtocolError> {
        // Errors are those of the earliest byte that proves one, so the
        // outcome never depends on how the bytes were cut: a limit passed
        // inside a line wins over a rule broken at its end.
        while self.pos < buf.len() {
            let Some(i) = memchr::memchr(b'\n', &buf[self.pos..]).map(|i| i + self.pos) else {
                self.pos = buf.len();
                break;
            };
            let crlf = i > self.line_start && buf[i - 1] == b'\r';
            let content = i - self.line_start - usize::from(crlf);
            if !self.started && content > limits.max_line {
                // Proven at the first byte past the limit (a CR there may
                // still have been a line end).
                let at = self.line_start
                    + limits.max_line
                    + usize::from(buf.get(self.line_start + limits.max_line) == Some(&b'\r'));
                if at > limits.max_head {
                    return Err(ProtocolError::HeadTooLarge);
                }
                return Err(self.line_error());
            }
            if i > limits.max_head {
                return Err(ProtocolError::HeadTooLarge);
            }
            if !crlf {
                return Err(ProtocolError::BareLf);
            }
            let line = &buf[self.line_start..i - 1];
            if memchr::memchr(b'\r', line).is_some() {
                return Err(ProtocolError::BareCr);
            }
            self.pos = i + 1;
            if line.is_empty() {
                if self.pos > limits.max_head {
                    return Err(ProtocolError::HeadTooLarge);
                }
                if self.started {
                    return Ok(Some(i + 1));
                }
                // An empty line before the start line is ignored
                // (RFC 9112 §2.2), but still counts towards the head size.
            } else if !self.started {
                self.started = true;
            } else {
                if matches!(line[0], b' ' | b'\t') {
                    return Err(ProtocolError::ObsFold);
                }
                self.lines += 1;
                if self.lines > limits.max_headers.min(MAX_HEADERS_CAP) {
                    return Err(ProtocolError::TooManyHeaders);
                }
            }
            if self.pos > limits.max_head {
                return Err(ProtocolError::HeadTooLarge);
            }
            self.line_start = i + 1;
        }
        // A CR that may be the start of the line's CRLF is not part of it.
        let pending = buf.len() - self.line_start - usize::from(buf.last() == Some(&b'\r'));
        if !self.started && pending > limits.max_line {
            return Err(self.line_error());
        }
        if buf.len() > limits.max_head {
            return Err(ProtocolError::HeadTooLarge);
        }
        Ok(None)
    }

    fn line_error(&self) -> ProtocolError {
        if self.response {
            ProtocolError::HeadTooLarge
        } else {
            ProtocolError::UriTooLong
        }
    }
}

/// Why httparse refused a head: looked at line by line (only on the error
/// path) to name the rule that was broken.
fn classify_field_error(head: &[u8]) -> ProtocolError {
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if matches!(line[0], b' ' | b'\t') {
            return ProtocolError::ObsFold;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            return ProtocolError::InvalidHeaderName;
        };
        let name = &line[..colon];
        if name.last().is_some_and(|b| matches!(b, b' ' | b'\t')) {
            return ProtocolError::SpaceBeforeColon;
        }
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return ProtocolError::InvalidHeaderName;
        }
        if !line[colon + 1..].iter().all(|&b| is_field_byte(b)) {
            return ProtocolError::InvalidHeaderValue;
        }
    }
    ProtocolError::InvalidHeaderName
}

fn first_line(head: &[u8]) -> &[u8] {
    let mut h = head;
    while let [b'\r', b'\n', rest @ ..] = h {
        h = rest;
    }
    let end = memchr::memchr(b'\r', h).unwrap_or(h.len());
    &h[..end]
}

/// Whether a version token is well-formed but not 1.0/1.1 (`HTTP/2.0`,
/// `HTTP/1.2`, `HTTP/3`): that is 505, anything else 400.
fn is_other_version(tok: &[u8]) -> bool {
    match tok.strip_prefix(b"HTTP/") {
        Some(v) => !v.is_empty() && v.iter().all(|b| b.is_ascii_digit() || *b == b'.'),
        None => false,
    }
}

fn map_error(e: httparse::Error, head: &[u8], response: bool) -> ProtocolError {
    match e {
        httparse::Error::HeaderName => classify_field_error(head),
        httparse::Error::HeaderValue => ProtocolError::InvalidHeaderValue,
        httparse::Error::TooManyHeaders => ProtocolError::TooManyHeaders,
        httparse::Error::Version => {
            let line = first_line(head);
            let tok = if response {
                line.split(|&b| b == b' ').next().unwrap_or_default()
            } else {
                line.rsplit(|&b| b == b' ').next().unwrap_or_default()
            };
            if is_other_version(tok) {
                ProtocolError::UnsupportedVersion
            } else if response {
                ProtocolError::BadStatusLine
            } else {
                ProtocolError::BadRequestLine
            }
        }
        _ if response => ProtocolError::BadStatusLine,
        _ => ProtocolError::BadRequestLine,
    }
}

fn version_of(v: Option<u8>) -> Version {
    if v == Some(0) {
        Version::Http10
    } else {
        Version::Http11
    }
}

/// What httparse made of a buffer: a complete head (its length and the
/// ranges of its parts), more bytes needed, or an error.
enum Attempt<T> {
    Complete(usize, T),
    Partial,
    Invalid(httparse::Error),
}

/// A parsed start line and fields, as ranges of the parsed slice.
struct Parts {
    /// Method and target, or status (`start.0.start`) and reason.
    start: (Span, Span),
    status: u16,
    version: Version,
    /// Where the first field line starts, and how many there are.
    fields_at: u32,
    count: u32,
    /// What the fields say about framing, read in the same pass.
    summary: Summary,
}

impl Parts {
    /// `SUM`: also read the framing summary (the server wants it; a plain
    /// decode does not pay for it).
    fn new<const SUM: bool>(
        base: &[u8],
        start: (Span, Span),
        status: u16,
        version: Version,
        parsed: &[httparse::Header<'_>],
    ) -> Parts {
        let fields_at = parsed
            .first()
            .map_or(0, |h| Span::of(base, h.name.as_bytes()).start);
        let mut summary = Summary::NONE;
        if SUM {
            for h in parsed {
                summary.add(h.name.as_bytes(), h.value);
            }
        }
        Parts {
            start,
            status,
            version,
            fields_at,
            count: parsed.len() as u32,
            summary,
        }
    }

    fn headers(&self, buf: Bytes) -> Headers {
        Headers {
            buf,
            start: self.fields_at,
            count: self.count,
        }
    }

    fn request(self, head: Bytes) -> RequestHead {
        RequestHead {
            target: self.start.1,
            version: self.version,
            headers: self.headers(head),
        }
    }

    fn response(self, head: Bytes) -> ResponseHead {
        ResponseHead {
            status: self.status,
            reason: self.start.1,
            version: self.version,
            headers: self.headers(head),
        }
    }
}

/// Header slots for httparse, left uninitialised: zeroing all
/// [`MAX_HEADERS_CAP`] of them would cost more than parsing a short head.
type Slots<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS_CAP];

fn slots<'b>() -> Slots<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS_CAP]
}

fn try_request<const SUM: bool>(buf: &[u8], max_headers: usize) -> Attempt<Parts> {
    let mut arr = slots();
    let n = max_headers.min(MAX_HEADERS_CAP);
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, &mut arr[..n]) {
        Ok(httparse::Status::Complete(len)) => {
            let (Some(method), Some(path)) = (req.method, req.path) else {
                return Attempt::Invalid(httparse::Error::Token);
            };
            let start = (
                Span::of(buf, method.as_bytes()),
                Span::of(buf, path.as_bytes()),
            );
            let version = version_of(req.version);
            Attempt::Complete(len, Parts::new::<SUM>(buf, start, 0, version, req.headers))
        }
        Ok(httparse::Status::Partial) => Attempt::Partial,
        Err(e) => Attempt::Invalid(e),
    }
}

fn try_response(buf: &[u8], max_headers: usize) -> Attempt<Parts> {
    let mut arr = slots();
    let n = max_headers.min(MAX_HEADERS_CAP);
    let mut res = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        buf,
        &mut arr[..n],
    ) {
        Ok(httparse::Status::Complete(len)) => {
            let Some(status) = res.code else {
                return Attempt::Invalid(httparse::Error::Status);
            };
            let start = (
                Span::default(),
                Span::of(buf, res.reason.unwrap_or("").as_bytes()),
            );
            let version = version_of(res.version);
            Attempt::Complete(
                len,
                Parts::new::<false>(buf, start, status, version, res.headers),
            )
        }
        Ok(httparse::Status::Partial) => Attempt::Partial,
        Err(e) => Attempt::Invalid(e),
    }
}

/// httparse lets bytes above 0x7f through; a request target is ASCII
/// (RFC 9112 §3.2, RFC 3986). httparse already refused controls, space and
/// DEL in it, so what is left to refuse is exactly the non-ASCII bytes.
fn target_ok(target: &[u8]) -> bool {
    !target.is_empty() && target.is_ascii()
}

/// Parses a complete request head (as delimited by [`HeadScanner`]).
///
/// # Errors
/// The head is malformed.
pub fn parse_request(head: Bytes, limits: &HeadLimits) -> Result<RequestHead, ProtocolError> {
    parse_request_as::<false>(head, limits).map(|(h, _)| h)
}

fn parse_request_as<const SUM: bool>(
    mut head: Bytes,
    limits: &HeadLimits,
) -> Result<(RequestHead, Summary), ProtocolError> {
    // Empty lines before the request line (RFC 9112 §2.2), which httparse
    // skips, are dropped: a head starts at its method.
    head.advance(empty_lines(&head));
    let parts = match try_request::<SUM>(&head, limits.max_headers) {
        Attempt::Complete(len, p) if len == head.len() => p,
        Attempt::Complete(..) | Attempt::Partial => return Err(ProtocolError::BadRequestLine),
        Attempt::Invalid(e) => return Err(map_error(e, &head, false)),
    };
    if !target_ok(parts.start.1.get(&head)) {
        return Err(ProtocolError::BadRequestLine);
    }
    let summary = parts.summary;
    Ok((parts.request(head), summary))
}

/// How many bytes of CRLF (or bare LF) lines start `b`.
fn empty_lines(b: &[u8]) -> usize {
    let mut n = 0;
    while let Some(i) = match b.get(n..) {
        Some([b'\r', b'\n', ..]) => Some(2),
        Some([b'\n', ..]) => Some(1),
        _ => None,
    } {
        n += i;
    }
    n
}

/// Parses a complete response head.
///
/// # Errors
/// The head is malformed.
pub fn parse_response(head: Bytes, limits: &HeadLimits) -> Result<ResponseHead, ProtocolError> {
    let parts = match try_response(&head, limits.max_headers) {
        Attempt::Complete(len, p) if len == head.len() => p,
        Attempt::Complete(..) | Attempt::Partial => return Err(ProtocolError::BadStatusLine),
        Attempt::Invalid(e) => return Err(map_error(e, &head, true)),
    };
    if !(100..=999).contains(&parts.status) {
        return Err(ProtocolError::BadStatusLine);
    }
    Ok(parts.response(head))
}

/// Parses a trailer section (field lines and the final empty line).
///
/// # Errors
/// [`ProtocolError::BadTrailers`].
pub fn parse_trailers(section: Bytes, max_fields: usize) -> Result<Headers, ProtocolError> {
    // Trailers are rare: the plain (zeroed) header array is fine here.
    let mut arr = [httparse::EMPTY_HEADER; MAX_HEADERS_CAP];
    let n = max_fields.min(MAX_HEADERS_CAP);
    match httparse::parse_headers(&section, &mut arr[..n]) {
        Ok(httparse::Status::Complete((len, parsed))) if len == section.len() => {
            let count = parsed.len() as u32;
            Ok(Headers {
                buf: section,
                start: 0,
                count,
            })
        }
        _ => Err(ProtocolError::BadTrailers),
    }
}

/// A complete request head at the front of `buf`, split off zero-copy.
/// `scan` carries the progress between calls; it is reset after a head.
///
/// A head that arrives whole (the common case) is parsed in one pass
/// that also checks its line ends and limits; a head that arrives in
/// pieces is delimited by `scan` as the bytes come, without rescanning,
/// and parsed by httparse once complete.
///
/// # Errors
/// The head is malformed or over a limit.
pub fn decode_request(
    buf: &mut BytesMut,
    scan: &mut HeadScanner,
    limits: &HeadLimits,
) -> Result<Option<RequestHead>, ProtocolError> {
    if buf.is_empty() {
        // Between requests (a response finished): nothing to look at.
        return Ok(None);
    }
    if scan.is_fresh() {
        // Not read: a plain decode does not pay for the summary.
        let mut unread = Summary::NONE;
        if let Some(w) = whole_request::<false>(buf, limits, &mut unread) {
            return Ok(Some(take(w, buf)));
        }
        // Incomplete, malformed or over a limit: the careful path waits or
        // names the error.
    }
    Ok(scanned_request::<false>(buf, scan, limits)?.map(|(h, _)| h))
}

/// [`decode_request`], with what the fields say about framing (read in
/// the parser's pass over them) for the server, which needs it at once.
///
/// # Errors
/// As [`decode_request`].
pub fn decode_request_summarized(
    buf: &mut BytesMut,
    scan: &mut HeadScanner,
    limits: &HeadLimits,
) -> Result<Option<(RequestHead, Summary)>, ProtocolError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if scan.is_fresh() {
        let mut summary = Summary::NONE;
        if let Some(w) = whole_request::<true>(buf, limits, &mut summary) {
            return Ok(Some((take(w, buf), summary)));
        }
    }
    scanned_request::<true>(buf, scan, limits)
}

/// The careful path of [`decode_request`]: the scanner delimits the head
/// as its bytes come, then it is parsed once.
#[inline(never)]
fn scanned_request<const SUM: bool>(
    buf: &mut BytesMut,
    scan: &mut HeadScanner,
    limits: &HeadLimits,
) -> Result<Option<(RequestHead, Summary)>, ProtocolError> {
    match scan.scan(buf, limits)? {
        None => Ok(None),
        Some(len) => {
            scan.reset();
            parse_request_as::<SUM>(buf.split_to(len).freeze(), limits).map(Some)
        }
    }
}

/// Splits the head [`whole_request`] found off `buf` (zero-copy) and
/// builds it, in place.
#[inline(always)]
fn take(w: Whole, buf: &mut BytesMut) -> RequestHead {
    RequestHead {
        target: w.part,
        version: w.version,
        headers: split_fields(&w, buf),
    }
}

/// Splits the whole head `w` describes off `buf` (zero-copy), as its
/// fields.
#[inline(always)]
fn split_fields(w: &Whole, buf: &mut BytesMut) -> Headers {
    Headers {
        buf: buf.split_to(w.len).freeze(),
        start: w.fields_at,
        count: w.count,
    }
}

/// A complete response head at the front of `buf`, split off zero-copy
/// (the same two paths as [`decode_request`]).
///
/// # Errors
/// The head is malformed or over a limit.
pub fn decode_response(
    buf: &mut BytesMut,
    scan: &mut HeadScanner,
    limits: &HeadLimits,
) -> Result<Option<ResponseHead>, ProtocolError> {
    if buf.is_empty() {
        // Between requests (a response finished): nothing to look at.
        return Ok(None);
    }
    if scan.is_fresh() {
        if let Some(w) = whole_response(buf, limits) {
            return Ok(Some(ResponseHead {
                status: w.status,
                reason: w.part,
                version: w.version,
                headers: split_fields(&w, buf),
            }));
        }
    }
    match scan.scan(buf, limits)? {
        None => Ok(None),
        Some(len) => {
            scan.reset();
            parse_response(buf.split_to(len).freeze(), limits).map(Some)
        }
    }
}

// ------------------------------------------------------------ serializing

/// Whether `b` may appear in a token (RFC 9110 §5.6.2).
pub fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// Whether `b` may appear in a field value (VCHAR, obs-text, SP, HTAB).
pub fn is_field_byte(b: u8) -> bool {
    FIELD_BYTE[b as usize]
}

/// [`is_tchar`] as a table: names are checked byte by byte on every
/// response, and a lookup is cheaper than the comparisons.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    t
};

/// [`is_field_byte`] as a table.
static FIELD_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = b == 0x09 || (b >= 0x20 && b != 0x7f);
        b += 1;
    }
    t
};

/// Whether every byte of `v` may appear in a field value. Values are
/// checked on every response, so eight bytes are looked at at once: a
/// word is fine when no byte is below 0x20 and none is DEL; a word with
/// such a byte (maybe an HTAB, which is allowed) is looked at bytewise.
fn all_field_bytes(v: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut words = v.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        let x = u64::from_ne_bytes(b);
        // Exact tests (not approximations) for "some byte < 0x20" and
        // "some byte == 0x7f".
        let low = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let del = x ^ (ONES * 0x7f);
        let del = del.wrapping_sub(ONES) & !del & HIGH;
        if low | del != 0 && !w.iter().all(|&b| is_field_byte(b)) {
            return false;
        }
    }
    words.remainder().iter().all(|&b| is_field_byte(b))
}

/// Checks a field name the application gave.
///
/// # Errors
/// [`Error::InvalidHeader`].
pub fn check_name(name: &str) -> Result<(), Error> {
    // Every byte is looked at with no branch per byte: a name is short and
    // almost always good, so stopping early saves nothing.
    let all = name.bytes().fold(true, |ok, b| ok & is_tchar(b));
    if name.is_empty() || !all {
        return Err(Error::InvalidHeader("name is not a token"));
    }
    Ok(())
}

/// Checks a field value the application gave.
///
/// # Errors
/// [`Error::InvalidHeader`].
pub fn check_value(value: &[u8]) -> Result<(), Error> {
    if !all_field_bytes(value) {
        return Err(Error::InvalidHeader(
            "value holds CR, LF, NUL or a control byte",
        ));
    }
    if value.first().is_some_and(|b| matches!(b, b' ' | b'\t'))
        || value.last().is_some_and(|b| matches!(b, b' ' | b'\t'))
    {
        return Err(Error::InvalidHeader(
            "value has leading or trailing whitespace",
        ));
    }
    Ok(())
}

/// Appends `name: value\r\n` after checking both.
///
/// # Errors
/// [`Error::InvalidHeader`]; nothing is written then.
pub fn write_header(buf: &mut BytesMut, name: &str, value: &[u8]) -> Result<(), Error> {
    check_name(name)?;
    check_value(value)?;
    buf.reserve(name.len() + value.len() + 4);
    buf.put_slice(name.as_bytes());
    buf.put_slice(b": ");
    buf.put_slice(value);
    buf.put_slice(b"\r\n");
    Ok(())
}

/// Appends a status line, `HTTP/1.1 200 OK\r\n`.
pub fn write_status_line(buf: &mut BytesMut, version: Version, status: u16, reason: &str) {
    buf.reserve(15 + reason.len());
    let s = status.min(999);
    let mut line = *b"HTTP/1.x 000 ";
    line[..8].copy_from_slice(version.as_str().as_bytes());
    line[9] = b'0' + (s / 100) as u8;
    line[10] = b'0' + (s / 10 % 10) as u8;
    line[11] = b'0' + (s % 10) as u8;
    buf.put_slice(&line);
    // Reason phrases are HTAB, SP, VCHAR, obs-text.
    if reason.bytes().all(is_field_byte) {
        buf.put_slice(reason.as_bytes());
    } else {
        for b in reason.bytes() {
            buf.put_u8(if is_field_byte(b) { b } else { b' ' });
        }
    }
    buf.put_slice(b"\r\n");
}

/// Appends a request line, `GET /path HTTP/1.1\r\n`.
///
/// # Errors
/// [`Error::State`] if the method is not a token or the target holds
/// whitespace or control bytes.
pub fn write_request_line(
    buf: &mut BytesMut,
    method: &str,
    target: &str,
    version: Version,
) -> Result<(), Error> {
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(Error::State("method is not a token"));
    }
    if target.is_empty() || !target.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Error::State("request target is empty or holds whitespace"));
    }
    buf.reserve(method.len() + target.len() + 12);
    buf.put_slice(method.as_bytes());
    buf.put_u8(b' ');
    buf.put_slice(target.as_bytes());
    buf.put_u8(b' ');
    buf.put_slice(version.as_str().as_bytes());
    buf.put_slice(b"\r\n");
    Ok(())
}

/// Appends a decimal number.
pub fn write_decimal(buf: &mut BytesMut, n: u64) {
    let mut tmp = [0u8; 20];
    let i = digits_into(&mut tmp, n);
    buf.put_slice(&tmp[i..]);
}

/// Writes `n` in decimal at the end of `out` (20 digits hold any `u64`);
/// returns where the digits start.
pub(crate) fn digits_into(out: &mut [u8; 20], mut n: u64) -> usize {
    // A fixed-size array: every index below is in bounds.
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return i;
        }
    }
}

/// The standard reason phrase of a status (RFC 9110 §15), or `""`.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-at-a-time value check agrees with the byte table for
    /// every byte at every position of a word and of the tail, next to
    /// allowed bytes of every kind.
    #[test]
    fn value_check_agrees_with_the_table() {
        for fill in [b'a', b' ', b'\t', 0x80, 0xff, b'~'] {
            for len in 1..=19 {
                for at in 0..len {
                    for b in 0..=255u8 {
                        let mut v = alloc::vec![fill; len];
                        v[at] = b;
                        assert_eq!(
                            all_field_bytes(&v),
                            is_field_byte(b),
                            "byte {b:#x} at {at} of {len}, fill {fill:#x}"
                        );
                    }
                }
            }
        }
        assert!(all_field_bytes(b""));
    }

    /// At each limit, one under, at and one over it: the one-pass path
    /// (a whole head) and the scanner (a byte at a time) agree, a head at
    /// the limit is taken and one over it refused with the limit's error.
    #[test]
    fn one_pass_limits_match_the_scanner_at_the_boundaries() {
        fn decode(
            wire: &[u8],
            limits: &HeadLimits,
            bytewise: bool,
        ) -> Result<RequestHead, ProtocolError> {
            let (mut buf, mut scan) = (BytesMut::new(), HeadScanner::request());
            if !bytewise {
                buf.extend_from_slice(wire);
                return decode_request(&mut buf, &mut scan, limits).map(|h| h.unwrap());
            }
            for b in wire {
                buf.extend_from_slice(&[*b]);
                if let Some(h) = decode_request(&mut buf, &mut scan, limits)? {
                    return Ok(h);
                }
            }
            panic!("incomplete");
        }
        let check = |wire: &[u8], limits: &HeadLimits, want: Result<(), ProtocolError>| {
            let whole = decode(wire, limits, false);
            assert_eq!(whole, decode(wire, limits, true));
            assert_eq!(
                whole.map(|_| ()),
                want,
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        };
        let base = HeadLimits {
            max_line: 64,
            max_head: 1024,
            max_headers: 4,
        };
        // The request line: "GET /aa..a HTTP/1.1" is 14 bytes plus the a's.
        for (extra, want) in [(0, Ok(())), (1, Err(ProtocolError::UriTooLong))] {
            let line = format!("GET /{} HTTP/1.1", "a".repeat(64 - 14 + extra));
            let wire = format!("{line}\r\nHost: h\r\n\r\n");
            check(wire.as_bytes(), &base, want);
        }
        // The whole head, empty line included.
        let wire = b"GET / HTTP/1.1\r\nHost: h\r\nX: vvvvvvvv\r\n\r\n";
        for (max_head, want) in [
            (wire.len() + 1, Ok(())),
            (wire.len(), Ok(())),
            (wire.len() - 1, Err(ProtocolError::HeadTooLarge)),
        ] {
            check(wire, &HeadLimits { max_head, ..base }, want);
        }
        // The field count.
        for (n, want) in [
            (3, Ok(())),
            (4, Ok(())),
            (5, Err(ProtocolError::TooManyHeaders)),
        ] {
            let fields: String = (1..n).map(|i| format!("X-{i}: v\r\n")).collect();
            let wire = format!("GET / HTTP/1.1\r\nHost: h\r\n{fields}\r\n");
            check(wire.as_bytes(), &base, want);
        }
        // Line ends: a bare LF anywhere, trailing whitespace, empty values,
        // leading empty lines.
        for (wire, want) in [
            (
                &b"GET / HTTP/1.1\nHost: h\r\n\r\n"[..],
                Err(ProtocolError::BareLf),
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\n\r\n",
                Err(ProtocolError::BareLf),
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nX:\n\r\n",
                Err(ProtocolError::BareLf),
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h \t \n\r\n",
                Err(ProtocolError::BareLf),
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\n\n",
                Err(ProtocolError::BareLf),
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h \t \r\nX:\r\nY: \r\n\r\n",
                Ok(()),
            ),
            (b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", Ok(())),
            (
                b"GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",
                Err(ProtocolError::BadRequestLine),
            ),
        ] {
            check(wire, &base, want);
        }
    }

    /// The summary the parser reads as it goes is the one a pass over
    /// the parsed fields gives, on the one-pass path (whole heads) and on
    /// the scanner's (heads in pieces).
    #[test]
    fn parsed_summary_is_a_pass_over_the_fields() {
        let fields: &[&[u8]] = &[
            b"Host: h\r\n",
            b"host: h2\r\n",
            b"content-length: 5\r\n",
            b"Content-Length: 5, 5\r\n",
            b"Content-Length: x\r\n",
            b"Transfer-Encoding: gzip, chunked\r\n",
            b"CONNECTION: Keep-Alive, Upgrade\r\n",
            b"Connection: close\r\n",
            b"Upgrade: websocket\r\n",
            b"Expect:  100-continue \r\n",
            b"X-Other: 1\r\n",
        ];
        let limits = HeadLimits::default();
        for mask in 0u32..(1 << fields.len()) {
            let mut wire = b"POST /x HTTP/1.1\r\n".to_vec();
            for (i, f) in fields.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    wire.extend_from_slice(f);
                }
            }
            wire.extend_from_slice(b"\r\n");
            let mut whole = BytesMut::from(&wire[..]);
            let (head, sum) =
                decode_request_summarized(&mut whole, &mut HeadScanner::request(), &limits)
                    .unwrap()
                    .unwrap();
            assert_eq!(sum, Summary::of(head.headers()), "{mask:#x}");
            let (mut buf, mut scan, mut got) = (BytesMut::new(), HeadScanner::request(), None);
            for b in &wire {
                buf.extend_from_slice(&[*b]);
                if let Some(x) = decode_request_summarized(&mut buf, &mut scan, &limits).unwrap() {
                    got = Some(x);
                }
            }
            let (head2, sum2) = got.unwrap();
            assert_eq!((head2, sum2), (head, sum), "{mask:#x}");
        }
    }
}
