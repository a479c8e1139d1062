//! IRCv3 message tags (<https://ircv3.net/specs/extensions/message-tags>):
//! `@key=value;+client/key;vendor.example/key ` before the message proper.
//!
//! Values travel escaped: `\:` is `;`, `\s` a space, `\\` a backslash,
//! `\r` CR and `\n` LF; any other escaped character stands for itself and a
//! lone trailing backslash is dropped.

use alloc::borrow::Cow;
use alloc::vec::Vec;

/// Whether `key` is a well-formed tag key: an optional `+` (client-only
/// tag), an optional vendor (`host.name/`) and a name of ASCII letters,
/// digits and `-`.
pub fn valid_key(key: &[u8]) -> bool {
    let key = key.strip_prefix(b"+").unwrap_or(key);
    let name = match memchr::memrchr(b'/', key) {
        Some(i) => {
            let (vendor, rest) = key.split_at(i);
            if vendor.is_empty()
                || !vendor
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
            {
                return false;
            }
            rest.get(1..).unwrap_or_default()
        }
        None => key,
    };
    !name.is_empty() && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// Whether an escaped value as it appears on the wire is allowed: no NUL,
/// CR, LF, `;` or space.
pub fn valid_escaped_value(v: &[u8]) -> bool {
    !v.iter()
        .any(|b| matches!(b, 0 | b'\r' | b'\n' | b';' | b' '))
}

/// Undoes tag-value escaping; borrows when there is nothing to undo.
pub fn unescape(v: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'\\', v).is_none() {
        return Cow::Borrowed(v);
    }
    let mut out = Vec::with_capacity(v.len());
    let mut it = v.iter();
    while let Some(&b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match it.next() {
            Some(b':') => out.push(b';'),
            Some(b's') => out.push(b' '),
            Some(b'\\') => out.push(b'\\'),
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(&other) => out.push(other),
            None => {}
        }
    }
    Cow::Owned(out)
}

/// Escapes a raw value for the wire, appending to `out`. Every byte is
/// representable: NUL is the one byte escaping cannot carry, and it is
/// passed through for [`valid_escaped_value`] to reject.
pub fn escape_into(v: &[u8], out: &mut impl Extend<u8>) {
    for &b in v {
        match b {
            b';' => out.extend(*b"\\:"),
            b' ' => out.extend(*b"\\s"),
            b'\\' => out.extend(*b"\\\\"),
            b'\r' => out.extend(*b"\\r"),
            b'\n' => out.extend(*b"\\n"),
            _ => out.extend([b]),
        }
    }
}

/// One tag as it appears on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag<'a> {
    /// The key, `+` and vendor included.
    pub key: &'a [u8],
    /// The escaped value; `None` for a key without `=` (an empty value
    /// means the same, per the specification).
    pub raw_value: Option<&'a [u8]>,
}

impl<'a> Tag<'a> {
    /// The value, unescaped; an absent value is empty.
    pub fn value(&self) -> Cow<'a, [u8]> {
        match self.raw_value {
            Some(v) => unescape(v),
            None => Cow::Borrowed(&[]),
        }
    }

    /// Whether this is a client-only tag (`+key`).
    pub fn is_client_only(&self) -> bool {
        self.key.first() == Some(&b'+')
    }
}

/// The tags of a message, in wire order (see [`crate::Message::tags`]).
#[derive(Clone, Debug)]
pub struct Tags<'a> {
    rest: &'a [u8],
}

impl<'a> Tags<'a> {
    pub(crate) fn new(raw: &'a [u8]) -> Self {
        Tags { rest: raw }
    }
}

impl<'a> Iterator for Tags<'a> {
    type Item = Tag<'a>;

    fn next(&mut self) -> Option<Tag<'a>> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (item, rest) = match memchr::memchr(b';', self.rest) {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            if item.is_empty() {
                continue;
            }
            return Some(match memchr::memchr(b'=', item) {
                Some(i) => Tag {
                    key: &item[..i],
                    raw_value: Some(&item[i + 1..]),
                },
                None => Tag {
                    key: item,
                    raw_value: None,
                },
            });
        }
    }
}

/// Checks a tag section (without `@` and the space) as parsed: each item
/// has a valid key and a valid escaped value.
pub(crate) fn validate(raw: &[u8]) -> bool {
    Tags::new(raw).all(|t| valid_key(t.key) && t.raw_value.map_or(true, valid_escaped_value))
        && !raw.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trip() {
        let raw = b"a;b c\\d\r\ne";
        let mut esc = Vec::new();
        escape_into(raw, &mut esc);
        assert_eq!(esc, b"a\\:b\\sc\\\\d\\r\\ne");
        assert_eq!(&*unescape(&esc), raw);
    }

    #[test]
    fn odd_escapes() {
        assert_eq!(&*unescape(b"\\b\\"), b"b");
        assert_eq!(&*unescape(b"plain"), b"plain");
    }

    #[test]
    fn keys() {
        assert!(valid_key(b"time"));
        assert!(valid_key(b"+example.com/foo-bar"));
        assert!(!valid_key(b""));
        assert!(!valid_key(b"+"));
        assert!(!valid_key(b"/x"));
        assert!(!valid_key(b"a b"));
        assert!(!valid_key(b"x/"));
    }
}
