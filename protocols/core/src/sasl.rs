//! SASL PLAIN (RFC 4616) and LOGIN as SMTP (RFC 4954), POP3 (RFC 5034)
//! and IMAP (RFC 3501 AUTHENTICATE) carry them: base64 in both directions.

use alloc::string::String;
use alloc::vec::Vec;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Credentials a client presented.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The authorization identity (empty: the same as `username`).
    pub authzid: String,
    /// The authentication identity.
    pub username: String,
    /// The password, as sent.
    pub password: Vec<u8>,
}

impl core::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print a password.
        f.debug_struct("Credentials")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Decodes base64 (`=` alone is the empty string, RFC 4954 §4).
pub fn decode_b64(s: &str) -> Option<Vec<u8>> {
    if s == "=" {
        return Some(Vec::new());
    }
    STANDARD.decode(s.trim()).ok()
}

/// Encodes base64 (empty gives `=`).
pub fn encode_b64(b: &[u8]) -> String {
    if b.is_empty() {
        return String::from("=");
    }
    STANDARD.encode(b)
}

/// Parses a decoded PLAIN message `authzid NUL authcid NUL passwd`.
pub fn parse_plain(msg: &[u8]) -> Option<Credentials> {
    let mut parts = msg.splitn(3, |b| *b == 0);
    let authzid = parts.next()?;
    let user = parts.next()?;
    let pass = parts.next()?;
    if user.is_empty() || pass.contains(&0) {
        return None;
    }
    Some(Credentials {
        authzid: String::from(core::str::from_utf8(authzid).ok()?),
        username: String::from(core::str::from_utf8(user).ok()?),
        password: pass.to_vec(),
    })
}

/// Encodes a PLAIN message (base64 of `NUL user NUL password`).
pub fn encode_plain(user: &str, password: &[u8]) -> String {
    let mut m = Vec::with_capacity(user.len() + password.len() + 2);
    m.push(0);
    m.extend_from_slice(user.as_bytes());
    m.push(0);
    m.extend_from_slice(password);
    encode_b64(&m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain() {
        let b = encode_plain("tim", b"tanstaaftanstaaf");
        assert_eq!(b, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
        let c = parse_plain(&decode_b64(&b).unwrap()).unwrap();
        assert_eq!(c.username, "tim");
        assert_eq!(c.password, b"tanstaaftanstaaf");
        assert!(parse_plain(b"\0\0x").is_none());
        assert!(decode_b64("!!").is_none());
        assert_eq!(decode_b64("="), Some(Vec::new()));
    }
}
