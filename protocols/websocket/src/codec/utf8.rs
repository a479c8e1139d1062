//! Incremental UTF-8 validation (§8.1): a text message split into frames
//! (or read in pieces) fails at the first byte that cannot continue valid
//! UTF-8, not when the message ends.

/// Validates a byte stream fed in arbitrary pieces. Keeps at most the 3
/// bytes of a character cut by a piece boundary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Utf8Validator {
    carry: [u8; 4],
    len: usize,
}

/// The bytes in a sequence led by `lead` (a valid lead byte).
fn width(lead: u8) -> usize {
    match lead {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        _ => 2,
    }
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub const fn new() -> Self {
        Utf8Validator {
            carry: [0; 4],
            len: 0,
        }
    }

    /// Feeds the next piece; `Err(())` at the first invalid byte.
    #[allow(clippy::result_unit_err)]
    pub fn feed(&mut self, mut s: &[u8]) -> Result<(), ()> {
        if self.len > 0 {
            let need = width(self.carry[0]) - self.len;
            let take = need.min(s.len());
            let (head, tail) = s.split_at(take);
            self.carry[self.len..self.len + take].copy_from_slice(head);
            self.len += take;
            s = tail;
            match core::str::from_utf8(&self.carry[..self.len]) {
                Ok(_) => self.len = 0,
                Err(e) if e.error_len().is_none() => return Ok(()),
                Err(_) => return Err(()),
            }
        }
        match core::str::from_utf8(s) {
            Ok(_) => Ok(()),
            // `error_len() == None`: a valid prefix cut short by the end.
            Err(e) if e.error_len().is_none() => {
                let tail = &s[e.valid_up_to()..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.len = tail.len();
                Ok(())
            }
            Err(_) => Err(()),
        }
    }

    /// Whether the stream so far ends on a character boundary (a message
    /// may only end there).
    pub fn is_complete(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_all_splits(s: &[u8]) -> bool {
        let whole = core::str::from_utf8(s).is_ok();
        for cut in 0..=s.len() {
            for cut2 in cut..=s.len() {
                let mut v = Utf8Validator::new();
                let ok = v.feed(&s[..cut]).is_ok()
                    && v.feed(&s[cut..cut2]).is_ok()
                    && v.feed(&s[cut2..]).is_ok()
                    && v.is_complete();
                assert_eq!(ok, whole, "{s:x?} cut at {cut},{cut2}");
            }
        }
        whole
    }

    #[test]
    fn splits_agree_with_std() {
        assert!(check_all_splits("κόσμε 𝄞 €".as_bytes()));
        assert!(check_all_splits(
            b"Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"
        ));
        assert!(!check_all_splits(
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"
        ));
        assert!(!check_all_splits(b"\xf4\x90\x80\x80"));
        assert!(!check_all_splits(b"ab\xc0\xaf"));
        assert!(!check_all_splits(b"\xe2\x82"));
    }

    #[test]
    fn fails_at_the_first_bad_byte() {
        // Autobahn 6.4.1: the bad byte arrives in the second piece; the
        // validator must fail there, before the rest of the message.
        let mut v = Utf8Validator::new();
        assert!(v
            .feed(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")
            .is_ok());
        assert!(v.feed(b"\xf4\x90\x80\x80").is_err());
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"\xf4").is_ok());
        assert!(v.feed(b"\x90").is_err());
    }
}
