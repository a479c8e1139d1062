//! A channel's state: members with their `@`/`+`, topic, modes, bans,
//! invitations; and the `*`/`?` mask matching bans use.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use bytes::Bytes;
use twill_core::ConnId;

use crate::codec::CaseMapping;

/// A member's privileges in a channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Member {
    pub op: bool,
    pub voice: bool,
}

impl Member {
    /// The NAMES/WHO prefix: `@`, `+` or nothing.
    pub fn prefix(self) -> &'static [u8] {
        if self.op {
            b"@"
        } else if self.voice {
            b"+"
        } else {
            b""
        }
    }
}

/// The topic, who set it and when (Unix seconds).
#[derive(Clone, Debug)]
pub(crate) struct Topic {
    pub text: Bytes,
    pub setter: Bytes,
    pub at: i64,
}

#[derive(Debug)]
pub(crate) struct Channel {
    /// The name as first created (display case).
    pub name: Bytes,
    pub members: BTreeMap<ConnId, Member>,
    pub topic: Option<Topic>,
    pub topic_ops_only: bool,
    pub no_external: bool,
    pub moderated: bool,
    pub invite_only: bool,
    pub key: Option<Bytes>,
    pub limit: Option<usize>,
    pub bans: Vec<Bytes>,
    pub invited: BTreeSet<ConnId>,
    pub created: i64,
}

impl Channel {
    pub fn new(name: Bytes, created: i64) -> Self {
        Channel {
            name,
            members: BTreeMap::new(),
            topic: None,
            topic_ops_only: true,
            no_external: true,
            moderated: false,
            invite_only: false,
            key: None,
            limit: None,
            bans: Vec::new(),
            invited: BTreeSet::new(),
            created,
        }
    }

    pub fn is_op(&self, conn: ConnId) -> bool {
        self.members.get(&conn).is_some_and(|m| m.op)
    }

    pub fn can_speak(&self, conn: ConnId, source: &[u8], cm: CaseMapping) -> bool {
        match self.members.get(&conn) {
            Some(m) if m.op || m.voice => true,
            Some(_) => !self.moderated && !self.is_banned(source, cm),
            None => !self.no_external && !self.moderated && !self.is_banned(source, cm),
        }
    }

    pub fn is_banned(&self, source: &[u8], cm: CaseMapping) -> bool {
        self.bans.iter().any(|m| mask_match(m, source, cm))
    }

    /// The `+ntk key l 10` mode string and its arguments.
    pub fn mode_string(&self, show_key: bool) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut modes = Vec::from(&b"+"[..]);
        let mut args = Vec::new();
        for (on, c) in [
            (self.invite_only, b'i'),
            (self.moderated, b'm'),
            (self.no_external, b'n'),
            (self.topic_ops_only, b't'),
        ] {
            if on {
                modes.push(c);
            }
        }
        if let Some(k) = &self.key {
            modes.push(b'k');
            args.push(if show_key { k.to_vec() } else { b"*".to_vec() });
        }
        if let Some(l) = self.limit {
            modes.push(b'l');
            args.push(alloc::format!("{l}").into_bytes());
        }
        (modes, args)
    }
}

/// Whether `text` matches the glob `mask` (`*` any run, `?` one byte),
/// comparing under the case mapping. Iterative with one backtrack point,
/// so no input makes it slower than O(mask × text).
pub fn mask_match(mask: &[u8], text: &[u8], cm: CaseMapping) -> bool {
    let (mut m, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match mask.get(m) {
            Some(b'*') => {
                star = Some((m, t));
                m += 1;
            }
            Some(&c) if c == b'?' || cm.fold_byte(c) == cm.fold_byte(text[t]) => {
                m += 1;
                t += 1;
            }
            _ => match star {
                Some((sm, st)) => {
                    m = sm + 1;
                    t = st + 1;
                    star = Some((sm, st + 1));
                }
                None => return false,
            },
        }
    }
    mask.get(m..).unwrap_or_default().iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        let cm = CaseMapping::Rfc1459;
        assert!(mask_match(b"*!*@*", b"nick!user@host", cm));
        assert!(mask_match(b"Nick!*@*", b"nick!user@host", cm));
        assert!(mask_match(b"n?ck*", b"nick!u@h", cm));
        assert!(!mask_match(b"bob!*@*", b"nick!user@host", cm));
        assert!(mask_match(b"*", b"", cm));
        assert!(!mask_match(b"a", b"", cm));
        assert!(mask_match(b"*a*b*c", b"xxaxxbxxc", cm));
        assert!(!mask_match(b"*a*b*c", b"xxaxxbxx", cm));
    }
}
