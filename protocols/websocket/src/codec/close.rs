//! Close frame payloads (§5.5.1, §7.4): an optional status code and a
//! UTF-8 reason.

use crate::error::ProtocolError;

/// A close status code (§7.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// Normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// Going away (server shutdown, page left).
    pub const AWAY: CloseCode = CloseCode(1001);
    /// Protocol error.
    pub const PROTOCOL: CloseCode = CloseCode(1002);
    /// Unacceptable data type.
    pub const UNSUPPORTED: CloseCode = CloseCode(1003);
    /// No status code was present (never sent).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// Closed without a close frame (never sent).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// Invalid payload data (bad UTF-8).
    pub const INVALID_DATA: CloseCode = CloseCode(1007);
    /// Policy violation.
    pub const POLICY: CloseCode = CloseCode(1008);
    /// Message too big.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// Internal error (also: keep-alive ping unanswered).
    pub const INTERNAL: CloseCode = CloseCode(1011);

    /// Whether the code may appear in a close frame on the wire, sent or
    /// received: 1000–1003, 1007–1014 and the 3000–4999 ranges for
    /// libraries and applications. 1005, 1006 and 1015 are for reporting
    /// only; the rest is reserved.
    pub const fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// Parses a close payload: `None` for an empty one (reported as 1005), else
/// the code and the reason. A 1-byte payload, a code not allowed on the
/// wire and a reason that is not UTF-8 are violations.
pub fn parse_close(payload: &[u8]) -> Result<Option<(CloseCode, &str)>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ProtocolError::BadClosePayload),
        [a, b, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*a, *b]));
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::BadCloseCode(code.0));
            }
            let reason = core::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Some((code, reason)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_like_autobahn_7_7_and_7_9() {
        // 7.7.x: codes that must be accepted.
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(c).is_valid_on_wire(), "{c}");
        }
        // 7.9.x: codes that must be refused.
        for c in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(c).is_valid_on_wire(), "{c}");
        }
    }

    #[test]
    fn payloads() {
        assert_eq!(parse_close(b""), Ok(None));
        assert_eq!(parse_close(b"\x03"), Err(ProtocolError::BadClosePayload));
        assert_eq!(
            parse_close(b"\x03\xe8bye"),
            Ok(Some((CloseCode(1000), "bye")))
        );
        assert_eq!(
            parse_close(b"\x03\xe8\xff"),
            Err(ProtocolError::InvalidUtf8)
        );
        assert_eq!(
            parse_close(b"\x03\xed"),
            Err(ProtocolError::BadCloseCode(1005))
        );
    }
}
