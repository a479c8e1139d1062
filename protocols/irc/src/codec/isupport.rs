//! RPL_ISUPPORT (005): the server's `KEY[=VALUE]` and `-KEY` tokens, with
//! typed getters for the ones clients need.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::casemap::CaseMapping;
use super::message::Message;

/// What the server said it supports, accumulated over its 005 replies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Isupport {
    tokens: BTreeMap<String, String>,
}

/// Undoes the `\xHH` escapes ISUPPORT values use.
pub fn unescape_value(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' {
            let hex = core::str::from_utf8(&b[i + 2..i + 4]).ok();
            if let Some(n) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(n);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Isupport {
    /// Nothing known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the tokens of one 005 message (`:server 005 nick TOKENS… :are
    /// supported`); other messages are ignored.
    pub fn add(&mut self, msg: &Message) {
        if msg.numeric() != Some(5) || msg.len() < 2 {
            return;
        }
        let n = msg.len();
        // The first parameter is our nick, the last the human text.
        for p in msg.params().skip(1).take(n.saturating_sub(2)) {
            self.add_token(&String::from_utf8_lossy(p));
        }
    }

    /// Takes one token: `KEY`, `KEY=VALUE` or `-KEY` (removal).
    pub fn add_token(&mut self, token: &str) {
        if let Some(k) = token.strip_prefix('-') {
            self.tokens.remove(k);
            return;
        }
        let (k, v) = token.split_once('=').unwrap_or((token, ""));
        if !k.is_empty() {
            self.tokens.insert(k.into(), unescape_value(v));
        }
    }

    /// The raw value of `key` (empty for a key without a value).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.tokens.get(key).map(String::as_str)
    }

    /// All tokens.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tokens.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn number(&self, key: &str) -> Option<usize> {
        self.get(key).and_then(|v| v.parse().ok())
    }

    /// `CASEMAPPING` (default `rfc1459`).
    pub fn casemapping(&self) -> CaseMapping {
        self.get("CASEMAPPING")
            .and_then(|v| CaseMapping::from_name(v.as_bytes()))
            .unwrap_or_default()
    }

    /// `CHANTYPES` (default `#&`).
    pub fn chantypes(&self) -> &str {
        self.get("CHANTYPES").unwrap_or("#&")
    }

    /// `PREFIX`: (mode, symbol) pairs, highest first (default `(ov)@+`).
    pub fn prefix(&self) -> Vec<(char, char)> {
        let v = self.get("PREFIX").unwrap_or("(ov)@+");
        let Some((modes, symbols)) = v.strip_prefix('(').and_then(|r| r.split_once(')')) else {
            return Vec::new();
        };
        modes.chars().zip(symbols.chars()).collect()
    }

    /// `CHANMODES=A,B,C,D`: list modes, modes with a parameter always, with
    /// a parameter when set, and flags.
    pub fn chanmodes(&self) -> [String; 4] {
        let mut out: [String; 4] = Default::default();
        if let Some(v) = self.get("CHANMODES") {
            for (slot, part) in out.iter_mut().zip(v.split(',')) {
                *slot = part.into();
            }
        }
        out
    }

    /// `NICKLEN`.
    pub fn nicklen(&self) -> Option<usize> {
        self.number("NICKLEN")
    }

    /// `CHANNELLEN`.
    pub fn channellen(&self) -> Option<usize> {
        self.number("CHANNELLEN")
    }

    /// `TOPICLEN`.
    pub fn topiclen(&self) -> Option<usize> {
        self.number("TOPICLEN")
    }

    /// `NETWORK`.
    pub fn network(&self) -> Option<&str> {
        self.get("NETWORK")
    }

    /// Whether `name` starts with one of the channel types.
    pub fn is_channel(&self, name: &[u8]) -> bool {
        name.first()
            .is_some_and(|c| self.chantypes().as_bytes().contains(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn tokens() {
        let m = Message::parse(Bytes::from_static(
            b":irc.example 005 me CASEMAPPING=ascii CHANTYPES=# PREFIX=(qov)~@+ NICKLEN=30 NETWORK=Ex\\x20Net CHANMODES=b,k,l,imnt EXCEPTS :are supported by this server",
        ))
        .unwrap();
        let mut i = Isupport::new();
        i.add(&m);
        assert_eq!(i.casemapping(), CaseMapping::Ascii);
        assert_eq!(i.chantypes(), "#");
        assert_eq!(i.prefix(), vec![('q', '~'), ('o', '@'), ('v', '+')]);
        assert_eq!(i.nicklen(), Some(30));
        assert_eq!(i.network(), Some("Ex Net"));
        assert_eq!(i.chanmodes()[3], "imnt");
        assert_eq!(i.get("EXCEPTS"), Some(""));
        assert!(i.is_channel(b"#x") && !i.is_channel(b"&x"));
        i.add_token("-EXCEPTS");
        assert_eq!(i.get("EXCEPTS"), None);
        assert_eq!(unescape_value("a\\x3Db\\x"), "a=b\\x");
    }
}
