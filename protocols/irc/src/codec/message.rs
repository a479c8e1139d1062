//! One IRC message: parsed without copying ([`Message`], every part a range
//! of one `Bytes`) and written by an [`Encoder`] that cannot put CR, LF or
//! NUL inside a message.
//!
//! Grammar (RFC 2812 §2.3.1 with IRCv3 message tags):
//!
//! ```text
//! message  = [ "@" tags SPACE ] [ ":" prefix SPACE ] command [ params ] crlf
//! params   = *14( SPACE middle ) [ SPACE ":" trailing ]
//!          =/ 14( SPACE middle ) [ SPACE [ ":" ] trailing ]
//! ```
//!
//! Runs of spaces between parts are accepted (as every server does); the
//! message proper is at most 512 bytes with its CRLF, the tag section at
//! most 8191 bytes with its `@` and space.

use bytes::{Bytes, BytesMut};
use core::fmt;

use super::tags::{self, Tags};
use crate::error::{EncodeError, ParseError, Part};

/// Most bytes of the message proper (source, command, parameters), CRLF
/// included (RFC 1459 §2.3).
pub const MAX_BODY: usize = 512;
/// Most bytes of the tag section, its `@` and trailing space included
/// (IRCv3 message-tags).
pub const MAX_TAGS: usize = 8191;
/// Most parameters (RFC 2812 §2.3.1).
pub const MAX_PARAMS: usize = 15;
/// The longest line a reader should accept: tags plus body.
pub const MAX_LINE: usize = MAX_TAGS + MAX_BODY;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: u16,
    end: u16,
}

impl Span {
    fn of(start: usize, end: usize) -> Span {
        // Lines are bounded by MAX_LINE (< u16::MAX) before spans are made.
        Span {
            start: start as u16,
            end: end as u16,
        }
    }

    fn get(self, raw: &[u8]) -> &[u8] {
        raw.get(usize::from(self.start)..usize::from(self.end))
            .unwrap_or_default()
    }
}

/// A parsed message: the line as one `Bytes` and ranges into it, so parsing
/// allocates nothing and parameters can be handed on as `Bytes` slices.
#[derive(Clone)]
pub struct Message {
    raw: Bytes,
    tags: Option<Span>,
    source: Option<Span>,
    command: Span,
    params: [Span; MAX_PARAMS],
    count: u8,
}

/// Limits a parser enforces; [`Limits::default`] is the specification's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of the message proper, CRLF included.
    pub body: usize,
    /// Most bytes of the tag section, `@` and space included.
    pub tags: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body: MAX_BODY,
            tags: MAX_TAGS,
        }
    }
}

impl Limits {
    /// Lenient limits for reading what a server sends (some send longer
    /// lines than the RFC allows): the longest line the framing passes.
    pub const fn lenient() -> Self {
        Limits {
            body: MAX_LINE,
            tags: MAX_TAGS,
        }
    }
}

impl Message {
    /// Parses one line (without its CR LF) under the default [`Limits`].
    ///
    /// # Errors
    /// A [`ParseError`] saying what is wrong; never panics.
    pub fn parse(line: impl Into<Bytes>) -> Result<Message, ParseError> {
        Message::parse_with(line.into(), Limits::default())
    }

    /// Parses a line (without its CR LF) under `limits`.
    ///
    /// # Errors
    /// A [`ParseError`] saying what is wrong.
    pub fn parse_with(raw: Bytes, limits: Limits) -> Result<Message, ParseError> {
        let line: &[u8] = &raw;
        if line.len() > MAX_LINE {
            return Err(ParseError::TooLong);
        }
        if let Some(i) = memchr::memchr3(0, b'\r', b'\n', line) {
            return Err(ParseError::ForbiddenByte(line[i]));
        }
        let mut pos = 0;
        let mut tags = None;
        if line.first() == Some(&b'@') {
            let end = memchr::memchr(b' ', line).ok_or(ParseError::NoCommand)?;
            if end + 1 > limits.tags {
                return Err(ParseError::TagsTooLong);
            }
            if !tags::validate(&line[1..end]) {
                return Err(ParseError::BadTags);
            }
            tags = Some(Span::of(1, end));
            pos = skip_spaces(line, end);
        }
        if line.len() - pos + 2 > limits.body {
            return Err(ParseError::BodyTooLong);
        }
        let mut source = None;
        if line.get(pos) == Some(&b':') {
            let end = memchr::memchr(b' ', &line[pos..]).map_or(line.len(), |i| pos + i);
            if end == pos + 1 {
                return Err(ParseError::EmptySource);
            }
            source = Some(Span::of(pos + 1, end));
            pos = skip_spaces(line, end);
        }
        let cend = memchr::memchr(b' ', &line[pos..]).map_or(line.len(), |i| pos + i);
        let command = &line[pos..cend];
        if command.is_empty() {
            return Err(ParseError::NoCommand);
        }
        if !valid_command(command) {
            return Err(ParseError::BadCommand);
        }
        let mut msg = Message {
            raw: Bytes::new(),
            tags,
            source,
            command: Span::of(pos, cend),
            params: [Span::default(); MAX_PARAMS],
            count: 0,
        };
        pos = cend;
        loop {
            pos = skip_spaces(line, pos);
            if pos >= line.len() {
                break;
            }
            let n = usize::from(msg.count);
            if line[pos] == b':' || n == MAX_PARAMS - 1 {
                // The trailing parameter: everything to the end. The 15th
                // parameter is trailing even without its colon.
                let start = if line[pos] == b':' { pos + 1 } else { pos };
                msg.params[n] = Span::of(start, line.len());
                msg.count += 1;
                break;
            }
            let end = memchr::memchr(b' ', &line[pos..]).map_or(line.len(), |i| pos + i);
            msg.params[n] = Span::of(pos, end);
            msg.count += 1;
            pos = end;
        }
        msg.raw = raw;
        Ok(msg)
    }

    // --- getters ---

    /// The whole line as received (without CR LF).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Whether the message carries a tag section.
    pub fn has_tags(&self) -> bool {
        self.tags.is_some()
    }

    /// The tag section as on the wire (without `@` and the space).
    pub fn raw_tags(&self) -> &[u8] {
        self.tags.map_or(&[][..], |s| s.get(&self.raw))
    }

    /// The tags, in wire order.
    pub fn tags(&self) -> Tags<'_> {
        Tags::new(self.raw_tags())
    }

    /// The unescaped value of the first tag named `key` (empty for a key
    /// without a value).
    pub fn tag(&self, key: &str) -> Option<alloc::borrow::Cow<'_, [u8]>> {
        self.tags()
            .find(|t| t.key == key.as_bytes())
            .map(|t| t.value())
    }

    /// The source (prefix) without its colon: `nick!user@host` or a server
    /// name.
    pub fn source(&self) -> Option<&[u8]> {
        self.source.map(|s| s.get(&self.raw))
    }

    /// The nick (or server name) of the source: the part before `!` or `@`.
    pub fn source_nick(&self) -> Option<&[u8]> {
        self.source().map(|s| {
            let end = memchr::memchr2(b'!', b'@', s).unwrap_or(s.len());
            &s[..end]
        })
    }

    /// The command as sent (letters keep their case; compare with
    /// [`Message::is`]).
    pub fn command(&self) -> &str {
        // Commands are checked to be ASCII letters or digits.
        core::str::from_utf8(self.command.get(&self.raw)).unwrap_or_default()
    }

    /// Whether the command is `cmd`, ignoring ASCII case.
    pub fn is(&self, cmd: &str) -> bool {
        self.command().eq_ignore_ascii_case(cmd)
    }

    /// The numeric reply code, if the command is three digits.
    pub fn numeric(&self) -> Option<u16> {
        let c = self.command.get(&self.raw);
        if c.len() == 3 && c.iter().all(u8::is_ascii_digit) {
            Some(c.iter().fold(0u16, |a, d| a * 10 + u16::from(d - b'0')))
        } else {
            None
        }
    }

    /// How many parameters.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Parameter `i`, if present.
    pub fn param(&self, i: usize) -> Option<&[u8]> {
        (i < self.len()).then(|| self.params[i].get(&self.raw))
    }

    /// Parameter `i` as UTF-8 text, if present and valid.
    pub fn param_str(&self, i: usize) -> Option<&str> {
        self.param(i).and_then(|p| core::str::from_utf8(p).ok())
    }

    /// Parameter `i` as a `Bytes` sharing the line's memory (no copy).
    pub fn param_bytes(&self, i: usize) -> Option<Bytes> {
        (i < self.len()).then(|| {
            let s = self.params[i];
            self.raw
                .slice(usize::from(s.start)..usize::from(s.end).min(self.raw.len()))
        })
    }

    /// The last parameter (the text of PRIVMSG, QUIT, ERROR …).
    pub fn last(&self) -> Option<&[u8]> {
        self.len().checked_sub(1).and_then(|i| self.param(i))
    }

    /// The parameters, in order.
    pub fn params(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.params[..self.len()].iter().map(|s| s.get(&self.raw))
    }

    /// Writes the message again through an [`Encoder`] in canonical form:
    /// tag values re-escaped (an empty value written as a bare key), single
    /// spaces, the last parameter trailing only when it must be.
    ///
    /// # Errors
    /// Never for a parsed message under default limits; an
    /// [`EncodeError`] if lenient limits let a longer body in.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<usize, EncodeError> {
        let mut e = Encoder::new(buf);
        for t in self.tags() {
            let v = t.value();
            e.tag(t.key, (!v.is_empty()).then_some(&*v));
        }
        if let Some(s) = self.source() {
            e.source(s);
        }
        e.command(self.command());
        let n = self.len();
        for (i, p) in self.params().enumerate() {
            if i + 1 == n {
                e.param_last(p);
            } else {
                e.param(p);
            }
        }
        e.finish()
    }
}

impl PartialEq for Message {
    /// Equal when tags (unescaped, in order), source, command (ignoring
    /// case) and parameters are; spacing and a redundant colon do not
    /// count.
    fn eq(&self, other: &Message) -> bool {
        self.tags()
            .map(|t| (t.key, t.value()))
            .eq(other.tags().map(|t| (t.key, t.value())))
            && self.source() == other.source()
            && self.command().eq_ignore_ascii_case(other.command())
            && self.params().eq(other.params())
    }
}

impl Eq for Message {}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Message({:?})", String::from_utf8_lossy(&self.raw))
    }
}

use alloc::string::String;

fn skip_spaces(line: &[u8], mut pos: usize) -> usize {
    while line.get(pos) == Some(&b' ') {
        pos += 1;
    }
    pos
}

/// Whether `c` is a command: letters, or exactly three digits.
pub fn valid_command(c: &[u8]) -> bool {
    (!c.is_empty() && c.iter().all(u8::is_ascii_alphabetic))
        || (c.len() == 3 && c.iter().all(u8::is_ascii_digit))
}

/// Writes one message into a `BytesMut`, checking every part: no CR, LF or
/// NUL anywhere, no space inside a middle parameter or the source, only the
/// last parameter may be empty or start with `:`, and the limits. On any
/// error nothing is left in the buffer.
///
/// ```
/// use bytes::BytesMut;
/// use twill_irc::Encoder;
/// let mut buf = BytesMut::new();
/// let mut e = Encoder::new(&mut buf);
/// e.command("PRIVMSG").param(b"#rust").trailing(b"hi there");
/// e.finish().unwrap();
/// assert_eq!(&buf[..], b"PRIVMSG #rust :hi there\r\n");
///
/// let mut e = Encoder::new(&mut buf);
/// e.command("PRIVMSG").param(b"#rust").trailing(b"hi\r\nQUIT");
/// assert!(e.finish().is_err());
/// assert!(buf.len() == 25); // the earlier message only
/// ```
#[derive(Debug)]
pub struct Encoder<'b> {
    buf: &'b mut BytesMut,
    start: usize,
    /// Where the message proper starts (after the tag section).
    body: usize,
    tags: usize,
    stage: Stage,
    params: usize,
    error: Option<EncodeError>,
    limits: Limits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Tags,
    Source,
    Params,
    Closed,
}

impl<'b> Encoder<'b> {
    /// Starts a message at the end of `buf`.
    pub fn new(buf: &'b mut BytesMut) -> Self {
        let start = buf.len();
        Encoder {
            buf,
            start,
            body: start,
            tags: 0,
            stage: Stage::Tags,
            params: 0,
            error: None,
            limits: Limits::default(),
        }
    }

    /// Other limits (a server relaying to clients of its own).
    pub fn limits(&mut self, limits: Limits) -> &mut Self {
        self.limits = limits;
        self
    }

    fn fail(&mut self, e: EncodeError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn check(&mut self, part: Part, bytes: &[u8]) -> bool {
        if let Some(i) = memchr::memchr3(0, b'\r', b'\n', bytes) {
            self.fail(EncodeError::ForbiddenByte {
                part,
                byte: bytes[i],
            });
            return false;
        }
        true
    }

    /// Adds a tag with a raw (unescaped) value; `None` for a key alone.
    /// Tags come before everything else.
    pub fn tag(&mut self, key: &[u8], value: Option<&[u8]>) -> &mut Self {
        if self.stage != Stage::Tags {
            self.fail(EncodeError::Order);
            return self;
        }
        if !tags::valid_key(key) {
            self.fail(EncodeError::BadTagKey);
            return self;
        }
        if value.is_some_and(|v| v.contains(&0)) {
            self.fail(EncodeError::ForbiddenByte {
                part: Part::Tag,
                byte: 0,
            });
            return self;
        }
        self.buf
            .extend_from_slice(if self.tags == 0 { b"@" } else { b";" });
        self.buf.extend_from_slice(key);
        if let Some(v) = value {
            self.buf.extend_from_slice(b"=");
            tags::escape_into(v, &mut *self.buf);
        }
        self.tags += 1;
        self
    }

    /// Adds a tag whose value is already escaped (relaying as received).
    pub fn raw_tag(&mut self, key: &[u8], escaped: Option<&[u8]>) -> &mut Self {
        if self.stage != Stage::Tags {
            self.fail(EncodeError::Order);
            return self;
        }
        if !tags::valid_key(key) {
            self.fail(EncodeError::BadTagKey);
            return self;
        }
        if escaped.is_some_and(|v| !tags::valid_escaped_value(v)) {
            self.fail(EncodeError::BadTagValue);
            return self;
        }
        self.buf
            .extend_from_slice(if self.tags == 0 { b"@" } else { b";" });
        self.buf.extend_from_slice(key);
        if let Some(v) = escaped {
            self.buf.extend_from_slice(b"=");
            self.buf.extend_from_slice(v);
        }
        self.tags += 1;
        self
    }

    fn end_tags(&mut self) {
        if self.stage == Stage::Tags {
            if self.tags > 0 {
                self.buf.extend_from_slice(b" ");
            }
            self.body = self.buf.len();
            self.stage = Stage::Source;
        }
    }

    /// Sets the source (`nick!user@host` or a server name).
    pub fn source(&mut self, source: &[u8]) -> &mut Self {
        self.end_tags();
        if self.stage != Stage::Source {
            self.fail(EncodeError::Order);
            return self;
        }
        if !self.check(Part::Source, source) {
            return self;
        }
        if source.is_empty() || source.contains(&b' ') {
            self.fail(EncodeError::BadSource);
            return self;
        }
        self.buf.extend_from_slice(b":");
        self.buf.extend_from_slice(source);
        self.buf.extend_from_slice(b" ");
        self
    }

    /// Sets the command: letters, or a three-digit numeric.
    pub fn command(&mut self, command: &str) -> &mut Self {
        self.end_tags();
        if self.stage != Stage::Source {
            self.fail(EncodeError::Order);
            return self;
        }
        if !valid_command(command.as_bytes()) {
            self.fail(EncodeError::BadCommand);
            return self;
        }
        self.buf.extend_from_slice(command.as_bytes());
        self.stage = Stage::Params;
        self
    }

    /// Sets a numeric reply as the command (`001`, `433` …).
    pub fn numeric(&mut self, code: u16) -> &mut Self {
        let code = code.min(999);
        let digits = [
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
        ];
        // Three ASCII digits are always a valid command.
        self.command(core::str::from_utf8(&digits).unwrap_or("000"))
    }

    fn param_slot(&mut self) -> bool {
        match self.stage {
            Stage::Params => {}
            Stage::Closed => {
                self.fail(EncodeError::ParamAfterTrailing);
                return false;
            }
            _ => {
                self.fail(EncodeError::Order);
                return false;
            }
        }
        if self.params >= MAX_PARAMS {
            self.fail(EncodeError::TooManyParams);
            return false;
        }
        self.params += 1;
        true
    }

    /// Adds a middle parameter: not empty, no space, not starting with `:`.
    /// (Use [`param_last`](Self::param_last) or
    /// [`trailing`](Self::trailing) for text.)
    pub fn param(&mut self, p: &[u8]) -> &mut Self {
        if !self.check(Part::Param, p) || !self.param_slot() {
            return self;
        }
        if p.is_empty() || p.contains(&b' ') || p[0] == b':' {
            self.fail(EncodeError::BadMiddle);
            return self;
        }
        self.buf.extend_from_slice(b" ");
        self.buf.extend_from_slice(p);
        self
    }

    /// Adds the last parameter, in trailing form (`:text`) only when it
    /// needs it (empty, a space, a leading colon). No parameter may follow.
    pub fn param_last(&mut self, p: &[u8]) -> &mut Self {
        if p.is_empty() || p.contains(&b' ') || p[0] == b':' {
            self.trailing(p)
        } else {
            self.param(p);
            self
        }
    }

    /// Adds the last parameter in trailing form (`:text`), which may hold
    /// spaces. No parameter may follow.
    pub fn trailing(&mut self, p: &[u8]) -> &mut Self {
        if !self.check(Part::Param, p) || !self.param_slot() {
            return self;
        }
        self.buf.extend_from_slice(b" :");
        self.buf.extend_from_slice(p);
        self.stage = Stage::Closed;
        self
    }

    /// Ends the message with CR LF; returns its length on the wire.
    ///
    /// # Errors
    /// The first [`EncodeError`] of any call; the buffer is then as before.
    pub fn finish(mut self) -> Result<usize, EncodeError> {
        if self.stage < Stage::Params && self.error.is_none() {
            self.fail(EncodeError::BadCommand);
        }
        let body = self.buf.len() - self.body + 2;
        if body > self.limits.body {
            self.fail(EncodeError::BodyTooLong { len: body });
        }
        if self.body - self.start > self.limits.tags {
            self.fail(EncodeError::TagsTooLong {
                len: self.body - self.start,
            });
        }
        if let Some(e) = self.error.take() {
            self.buf.truncate(self.start);
            return Err(e);
        }
        self.buf.extend_from_slice(b"\r\n");
        Ok(self.buf.len() - self.start)
    }

    /// Like [`finish`](Self::finish), but a message whose body is too long
    /// because of its trailing parameter has that parameter shortened (at
    /// a UTF-8 character boundary) until it fits: how a server relays a
    /// message that its longer source prefix pushed over 512 bytes.
    ///
    /// # Errors
    /// As `finish` for anything but the length of a trailing parameter.
    pub fn finish_truncating(self) -> Result<usize, EncodeError> {
        let body = self.buf.len() - self.body + 2;
        if self.error.is_none() && self.stage == Stage::Closed && body > self.limits.body {
            let over = body - self.limits.body;
            // The trailing parameter starts after the last " :".
            let tail = memchr::memmem::rfind(&self.buf[self.body..], b" :")
                .map(|i| self.body + i + 2)
                .unwrap_or(self.buf.len());
            let mut cut = self.buf.len().saturating_sub(over).max(tail);
            while cut > tail && cut < self.buf.len() && (self.buf[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            self.buf.truncate(cut);
        }
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Message {
        Message::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    #[test]
    fn parts() {
        let m = p("@a=b\\sc;+d :nick!u@h PRIVMSG #chan :hello there");
        assert_eq!(m.source(), Some(&b"nick!u@h"[..]));
        assert_eq!(m.source_nick(), Some(&b"nick"[..]));
        assert_eq!(m.command(), "PRIVMSG");
        assert_eq!(m.len(), 2);
        assert_eq!(m.param(1), Some(&b"hello there"[..]));
        assert_eq!(m.tag("a").as_deref(), Some(&b"b c"[..]));
        assert_eq!(m.tag("+d").as_deref(), Some(&b""[..]));
        assert!(m.tag("x").is_none());
    }

    #[test]
    fn fifteenth_param_is_trailing() {
        let m = p("CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16");
        assert_eq!(m.len(), 15);
        assert_eq!(m.param(14), Some(&b"15 16"[..]));
    }

    #[test]
    fn numerics() {
        assert_eq!(p(":s 001 me :Welcome").numeric(), Some(1));
        assert_eq!(p("PING x").numeric(), None);
    }

    #[test]
    fn errors() {
        for (line, e) in [
            ("", ParseError::NoCommand),
            (":src", ParseError::NoCommand),
            ("@a=b", ParseError::NoCommand),
            (": CMD", ParseError::EmptySource),
            ("PRI-VMSG x", ParseError::BadCommand),
            ("12 x", ParseError::BadCommand),
            ("@ CMD", ParseError::BadTags),
            ("@a=b;c=d;=x CMD", ParseError::BadTags),
            ("CMD a\0b", ParseError::ForbiddenByte(0)),
        ] {
            assert_eq!(Message::parse(Bytes::from(line)), Err(e), "{line:?}");
        }
        let long = "A ".to_string() + &"x".repeat(508);
        assert!(Message::parse(Bytes::from(long.clone())).is_ok());
        assert_eq!(
            Message::parse(Bytes::from(long + "x")),
            Err(ParseError::BodyTooLong)
        );
    }

    #[test]
    fn encoder_refuses_injection() {
        let mut buf = BytesMut::new();
        for bad in [&b"a\rb"[..], b"a\nb", b"a\0b"] {
            let mut e = Encoder::new(&mut buf);
            e.command("PRIVMSG").param(b"#c").trailing(bad);
            assert!(matches!(e.finish(), Err(EncodeError::ForbiddenByte { .. })));
            let mut e = Encoder::new(&mut buf);
            e.command("PRIVMSG").param(bad);
            assert!(e.finish().is_err());
            let mut e = Encoder::new(&mut buf);
            e.tag(b"k", Some(bad)).command("X");
            // CR and LF are escaped in tag values; only NUL is refused.
            let r = e.finish();
            assert_eq!(r.is_err(), bad.contains(&0));
            buf.clear();
        }
        let mut e = Encoder::new(&mut buf);
        e.command("X").param(b"a b");
        assert_eq!(e.finish(), Err(EncodeError::BadMiddle));
        let mut e = Encoder::new(&mut buf);
        e.command("X").trailing(b"a").param(b"b");
        assert_eq!(e.finish(), Err(EncodeError::ParamAfterTrailing));
        assert!(buf.is_empty());
    }

    #[test]
    fn truncating_keeps_utf8() {
        let mut buf = BytesMut::new();
        let text = "é".repeat(300);
        let mut e = Encoder::new(&mut buf);
        e.source(b"n!u@h")
            .command("PRIVMSG")
            .param(b"#c")
            .trailing(text.as_bytes());
        let n = e.finish_truncating().unwrap();
        assert!(n <= MAX_BODY);
        let m = Message::parse(buf.split().freeze().slice(..n - 2)).unwrap();
        assert!(core::str::from_utf8(m.param(1).unwrap()).is_ok());
    }

    #[test]
    fn round_trip_canonical() {
        let m = p("@time=2011-10-19T16:40:51.620Z :a!b@c  PRIVMSG   #x   :a b");
        let mut buf = BytesMut::new();
        m.encode(&mut buf).unwrap();
        assert_eq!(
            &buf[..],
            b"@time=2011-10-19T16:40:51.620Z :a!b@c PRIVMSG #x :a b\r\n"
        );
    }
}
