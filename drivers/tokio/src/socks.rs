//! A core's sockets by key, quick for the core that has one.
//!
//! A factory connection's core owns exactly one socket and looks it up
//! several times per request (serving, reading, queueing the reply,
//! flushing it); a hash lookup for each was a tenth of the driver's own
//! work per request. [`SockMap`] keeps a lone socket inline and compares
//! one key; a hub with many falls back to the hash map.
//!
//! It is `twill_core::ConnMap`'s idea with another fallback: a factory
//! server on a current-thread runtime keeps every connection's socket in
//! one core, so the many-socket case is a hot path here, and `ConnMap`'s
//! `BTreeMap` cost 219 instructions more per hello request than this hash
//! map (callgrind, `wrk -c64`).

use twill_driver::engine::Key;
use twill_driver::IdMap;

/// Values by [`Key`], the only one inline.
#[derive(Debug)]
pub(crate) struct SockMap<V> {
    /// The only entry, while there is exactly one and `rest` is empty.
    one: Option<(Key, V)>,
    rest: IdMap<Key, V>,
}

impl<V> Default for SockMap<V> {
    fn default() -> Self {
        SockMap {
            one: None,
            rest: IdMap::default(),
        }
    }
}

impl<V> SockMap<V> {
    #[inline]
    pub(crate) fn get(&self, key: &Key) -> Option<&V> {
        match &self.one {
            Some((k, v)) if k == key => Some(v),
            Some(_) => None,
            None => self.rest.get(key),
        }
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, key: &Key) -> Option<&mut V> {
        match &mut self.one {
            Some((k, v)) if k == key => Some(v),
            Some(_) => None,
            None => self.rest.get_mut(key),
        }
    }

    /// Sets the value of `key`; returns what it replaces.
    pub(crate) fn insert(&mut self, key: Key, value: V) -> Option<V> {
        match self.one.take() {
            Some((k, old)) if k == key => {
                self.one = Some((key, value));
                Some(old)
            }
            Some((k, v)) => {
                self.rest.insert(k, v);
                self.rest.insert(key, value)
            }
            None if self.rest.is_empty() => {
                self.one = Some((key, value));
                None
            }
            None => self.rest.insert(key, value),
        }
    }

    pub(crate) fn remove(&mut self, key: &Key) -> Option<V> {
        match self.one.take() {
            Some((k, v)) if k == *key => Some(v),
            other => {
                self.one = other;
                if self.one.is_some() {
                    return None;
                }
                let v = self.rest.remove(key);
                // Down to one: inline again.
                if self.rest.len() == 1 {
                    self.one = self.rest.drain().next();
                }
                v
            }
        }
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        let one = self.one.as_ref().map(|(k, _)| *k);
        one.into_iter().chain(self.rest.keys().copied())
    }

    /// Takes every entry out.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (Key, V)> + '_ {
        self.one.take().into_iter().chain(self.rest.drain())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(m: &SockMap<&str>) -> Vec<Key> {
        let mut k: Vec<Key> = m.keys().collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn one_inline_then_many_then_one_again() {
        let mut m = SockMap::default();
        assert_eq!(m.get(&1), None);
        assert_eq!(m.insert(1, "a"), None);
        assert!(m.one.is_some() && m.rest.is_empty());
        assert_eq!(m.get(&1), Some(&"a"));
        assert_eq!(m.get(&2), None);
        assert_eq!(m.insert(1, "b"), Some("a"));
        assert_eq!(m.insert(2, "c"), None);
        assert!(m.one.is_none());
        assert_eq!(m.insert(3, "d"), None);
        assert_eq!(keys(&m), [1, 2, 3]);
        if let Some(v) = m.get_mut(&2) {
            *v = "e";
        }
        assert_eq!(m.get(&2), Some(&"e"));
        assert_eq!(m.remove(&9), None);
        assert_eq!(m.remove(&1), Some("b"));
        assert_eq!(m.remove(&3), Some("d"));
        // Back to one: inline, and still found.
        assert!(m.one.is_some() && m.rest.is_empty());
        assert_eq!(m.get(&2), Some(&"e"));
        assert_eq!(m.remove(&3), None);
        assert_eq!(m.remove(&2), Some("e"));
        assert_eq!(keys(&m), Vec::<Key>::new());
        assert_eq!(m.insert(4, "f"), None);
        assert_eq!(m.insert(5, "g"), None);
        let mut all: Vec<_> = m.drain().collect();
        all.sort_unstable();
        assert_eq!(all, [(4, "f"), (5, "g")]);
        assert_eq!(m.get(&4), None);
    }
}
