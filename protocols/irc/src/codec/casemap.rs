//! Case mapping of nicks and channel names (the `CASEMAPPING` ISUPPORT
//! token): `ascii` folds A–Z; `rfc1459` also treats `[]\~` as the upper
//! case of `{}|^` (RFC 1459 §2.2, Scandinavian origin); `strict-rfc1459`
//! leaves `~`/`^` alone.

use alloc::vec::Vec;

/// A case mapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CaseMapping {
    /// Only A–Z fold to a–z.
    Ascii,
    /// A–Z and `[]\~` fold to a–z and `{}|^`.
    #[default]
    Rfc1459,
    /// A–Z and `[]\` fold to a–z and `{}|`.
    StrictRfc1459,
}

impl CaseMapping {
    /// The mapping an ISUPPORT `CASEMAPPING` value names.
    pub fn from_name(name: &[u8]) -> Option<CaseMapping> {
        match name {
            b"ascii" => Some(CaseMapping::Ascii),
            b"rfc1459" => Some(CaseMapping::Rfc1459),
            b"strict-rfc1459" => Some(CaseMapping::StrictRfc1459),
            _ => None,
        }
    }

    /// The ISUPPORT name.
    pub fn name(self) -> &'static str {
        match self {
            CaseMapping::Ascii => "ascii",
            CaseMapping::Rfc1459 => "rfc1459",
            CaseMapping::StrictRfc1459 => "strict-rfc1459",
        }
    }

    /// One byte in lower case.
    pub fn fold_byte(self, b: u8) -> u8 {
        match (self, b) {
            (_, b'A'..=b'Z') => b + 32,
            (CaseMapping::Rfc1459 | CaseMapping::StrictRfc1459, b'[' | b']' | b'\\') => b + 32,
            (CaseMapping::Rfc1459, b'~') => b'^',
            _ => b,
        }
    }

    /// `s` in lower case: the key to compare and index names by.
    pub fn fold(self, s: &[u8]) -> Vec<u8> {
        s.iter().map(|&b| self.fold_byte(b)).collect()
    }

    /// Whether `a` and `b` name the same nick or channel.
    pub fn eq(self, a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(&x, &y)| self.fold_byte(x) == self.fold_byte(y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings() {
        let r = CaseMapping::Rfc1459;
        assert!(r.eq(b"Nick[a]\\~", b"nick{a}|^"));
        assert!(!CaseMapping::Ascii.eq(b"a[", b"a{"));
        assert!(CaseMapping::StrictRfc1459.eq(b"[", b"{"));
        assert!(!CaseMapping::StrictRfc1459.eq(b"~", b"^"));
        assert_eq!(r.fold(b"#Rust"), b"#rust");
    }
}
