//! CTCP, the Client-To-Client Protocol inside PRIVMSG and NOTICE text:
//! `\x01COMMAND params\x01` (ACTION, VERSION, PING, TIME …).
//!
//! Two old quoting levels are offered for peers that use them: the
//! low-level quote (`\x10` before `0`, `n`, `r`, `\x10` stands for NUL, LF,
//! CR, `\x10`), which lets a message carry those bytes at all, and the
//! CTCP-level quote (`\\a` for `\x01`, `\\\\` for `\\`). Modern clients send
//! neither, so [`parse`] and [`encode`] do not apply them by themselves.

use alloc::borrow::Cow;
use alloc::vec::Vec;

/// The CTCP delimiter.
pub const DELIM: u8 = 0x01;
const MQUOTE: u8 = 0x10;

/// A CTCP message found in a PRIVMSG/NOTICE text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctcp<'a> {
    /// The command (`ACTION`, `VERSION`, `PING` …).
    pub command: &'a [u8],
    /// Everything after the first space (empty when none).
    pub params: &'a [u8],
}

impl Ctcp<'_> {
    /// Whether the command is `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.command.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// The CTCP message in `text`, if it is one: it starts with `\x01`; the
/// closing `\x01` is optional (some clients omit it).
pub fn parse(text: &[u8]) -> Option<Ctcp<'_>> {
    let body = text.strip_prefix(&[DELIM])?;
    let body = match memchr::memchr(DELIM, body) {
        Some(i) => &body[..i],
        None => body,
    };
    let (command, params) = match memchr::memchr(b' ', body) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &[][..]),
    };
    if command.is_empty() {
        return None;
    }
    Some(Ctcp { command, params })
}

/// `\x01COMMAND params\x01` (the space only when there are params),
/// appended to `out`. `\x01` inside is dropped: it would end the message.
pub fn encode(command: &[u8], params: &[u8], out: &mut Vec<u8>) {
    out.push(DELIM);
    out.extend(command.iter().filter(|b| **b != DELIM));
    if !params.is_empty() {
        out.push(b' ');
        out.extend(params.iter().filter(|b| **b != DELIM));
    }
    out.push(DELIM);
}

/// The text of a `/me` action.
pub fn action(text: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(text.len() + 9);
    encode(b"ACTION", text, &mut v);
    v
}

/// Low-level quoting: NUL, LF, CR and `\x10` as `\x10` escapes.
pub fn low_quote(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.iter().any(|&b| matches!(b, 0 | b'\n' | b'\r' | MQUOTE)) {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len() + 4);
    for &b in raw {
        match b {
            0 => out.extend_from_slice(&[MQUOTE, b'0']),
            b'\n' => out.extend_from_slice(&[MQUOTE, b'n']),
            b'\r' => out.extend_from_slice(&[MQUOTE, b'r']),
            MQUOTE => out.extend_from_slice(&[MQUOTE, MQUOTE]),
            _ => out.push(b),
        }
    }
    Cow::Owned(out)
}

/// Undoes [`low_quote`]; an unknown escape stands for its character, a
/// lone `\x10` at the end is dropped.
pub fn low_dequote(q: &[u8]) -> Cow<'_, [u8]> {
    dequote(q, MQUOTE, |b| match b {
        b'0' => 0,
        b'n' => b'\n',
        b'r' => b'\r',
        other => other,
    })
}

/// CTCP-level quoting: `\x01` as `\\a`, `\\` as `\\\\`.
pub fn ctcp_quote(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.iter().any(|&b| matches!(b, DELIM | b'\\')) {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len() + 4);
    for &b in raw {
        match b {
            DELIM => out.extend_from_slice(b"\\a"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => out.push(b),
        }
    }
    Cow::Owned(out)
}

/// Undoes [`ctcp_quote`].
pub fn ctcp_dequote(q: &[u8]) -> Cow<'_, [u8]> {
    dequote(q, b'\\', |b| if b == b'a' { DELIM } else { b })
}

fn dequote(q: &[u8], esc: u8, map: impl Fn(u8) -> u8) -> Cow<'_, [u8]> {
    if memchr::memchr(esc, q).is_none() {
        return Cow::Borrowed(q);
    }
    let mut out = Vec::with_capacity(q.len());
    let mut it = q.iter();
    while let Some(&b) = it.next() {
        if b == esc {
            if let Some(&n) = it.next() {
                out.push(map(n));
            }
        } else {
            out.push(b);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_encode() {
        let c = parse(b"\x01ACTION waves hello\x01").unwrap();
        assert!(c.is("action"));
        assert_eq!(c.params, b"waves hello");
        assert_eq!(parse(b"\x01VERSION").unwrap().params, b"");
        assert!(parse(b"hello").is_none());
        assert!(parse(b"\x01\x01").is_none());
        assert_eq!(action(b"waves"), b"\x01ACTION waves\x01");
        let mut v = Vec::new();
        encode(b"PING", b"123", &mut v);
        assert_eq!(v, b"\x01PING 123\x01");
    }

    #[test]
    fn quoting_round_trips() {
        let raw = b"a\0b\nc\rd\x10e\x01f\\g";
        assert_eq!(&*low_dequote(&low_quote(raw)), raw);
        assert_eq!(&*ctcp_dequote(&ctcp_quote(raw)), raw);
        assert!(!low_quote(raw)
            .iter()
            .any(|b| matches!(b, 0 | b'\r' | b'\n')));
        assert!(!ctcp_quote(raw).contains(&DELIM));
    }
}
