//! Identifiers of connections, listeners and datagram sockets.

use core::fmt;

/// Ids at or above this value are chosen by machines (for `Open`); ids below
/// it by drivers (for accepted connections), so the two never collide.
pub const MACHINE_ID_BASE: u64 = 1 << 63;

/// One connection of a machine. Never reused: a closed connection's id is
/// never handed out again by the same allocator.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl ConnId {
    /// Whether a machine chose this id (for an `Open`) rather than a driver.
    pub const fn is_machine_chosen(self) -> bool {
        self.0 >= MACHINE_ID_BASE
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_machine_chosen() {
            write!(f, "ConnId(m{})", self.0 - MACHINE_ID_BASE)
        } else {
            write!(f, "ConnId({})", self.0)
        }
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A datagram socket. Sockets share the id space of connections: a machine
/// opens one with `Open { how: Bind }` under an id it chose, and the driver
/// names sockets it bound for a `udp:` endpoint from its own half.
pub type SockId = ConnId;

/// A listening socket the driver opened for an endpoint (or for a machine's
/// `Open { how: Listen }`, in which case it equals that `ConnId`'s value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerId(pub u64);

/// Hands out never-reused ids from one half of the range.
#[derive(Clone, Debug)]
pub struct IdAllocator {
    next: u64,
    end: u64,
}

impl IdAllocator {
    /// Ids for a machine's own `Open`s: the upper half.
    pub const fn for_machine() -> Self {
        IdAllocator {
            next: MACHINE_ID_BASE,
            end: u64::MAX,
        }
    }

    /// Ids for a driver's accepted connections: the lower half, from 1.
    pub const fn for_driver() -> Self {
        IdAllocator {
            next: 1,
            end: MACHINE_ID_BASE,
        }
    }

    /// The next unused id. At one id per nanosecond the half-range lasts
    /// 292 years, so running out is treated as a bug.
    pub fn next_id(&mut self) -> ConnId {
        assert!(self.next < self.end, "connection ids exhausted");
        let id = ConnId(self.next);
        self.next += 1;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_never_collide() {
        let mut m = IdAllocator::for_machine();
        let mut d = IdAllocator::for_driver();
        let a = m.next_id();
        let b = d.next_id();
        assert!(a.is_machine_chosen());
        assert!(!b.is_machine_chosen());
        assert_ne!(a, b);
        assert_ne!(m.next_id(), a);
    }
}
