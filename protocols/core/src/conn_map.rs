//! A map from connection ids to a machine's per-connection state, quick
//! for the machine that serves one connection.
//!
//! A driver's factory gives each accepted connection a machine of its own,
//! and such a machine looks its one connection up several times per
//! message. A `BTreeMap` costs a function call and a node search for each;
//! [`ConnMap`] keeps a lone connection inline and compares one id. A hub
//! with many connections falls back to the `BTreeMap`, in id order, as
//! before.

use alloc::collections::BTreeMap;

use crate::ConnId;

/// Per-connection state by [`ConnId`], iterated in id order.
#[derive(Clone, Debug)]
pub struct ConnMap<V> {
    /// The only entry, while there is exactly one and `rest` is empty.
    one: Option<(ConnId, V)>,
    rest: BTreeMap<ConnId, V>,
}

impl<V> Default for ConnMap<V> {
    fn default() -> Self {
        ConnMap {
            one: None,
            rest: BTreeMap::new(),
        }
    }
}

impl<V> ConnMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state of `id`.
    #[inline]
    pub fn get(&self, id: &ConnId) -> Option<&V> {
        match &self.one {
            Some((k, v)) if k == id => Some(v),
            Some(_) => None,
            None => self.rest.get(id),
        }
    }

    /// The state of `id`, to change.
    #[inline]
    pub fn get_mut(&mut self, id: &ConnId) -> Option<&mut V> {
        match &mut self.one {
            Some((k, v)) if k == id => Some(v),
            Some(_) => None,
            None => self.rest.get_mut(id),
        }
    }

    /// Whether `id` has state here.
    pub fn contains_key(&self, id: &ConnId) -> bool {
        self.get(id).is_some()
    }

    /// Sets the state of `id`; returns what it replaces.
    pub fn insert(&mut self, id: ConnId, value: V) -> Option<V> {
        match self.one.take() {
            Some((k, old)) if k == id => {
                self.one = Some((id, value));
                Some(old)
            }
            Some((k, v)) => {
                self.rest.insert(k, v);
                self.rest.insert(id, value)
            }
            None if self.rest.is_empty() => {
                self.one = Some((id, value));
                None
            }
            None => self.rest.insert(id, value),
        }
    }

    /// Takes the state of `id` out.
    pub fn remove(&mut self, id: &ConnId) -> Option<V> {
        match self.one.take() {
            Some((k, v)) if k == *id => Some(v),
            Some(other) => {
                self.one = Some(other);
                None
            }
            None => self.rest.remove(id),
        }
    }

    /// How many connections have state.
    pub fn len(&self) -> usize {
        usize::from(self.one.is_some()) + self.rest.len()
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.one.is_none() && self.rest.is_empty()
    }

    /// The ids, in order.
    pub fn keys(&self) -> impl Iterator<Item = &ConnId> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// The states, in id order.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// The states, in id order, to change.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> + '_ {
        self.iter_mut().map(|(_, v)| v)
    }

    /// Ids and states, in id order (`one` is only set while `rest` is
    /// empty, so chaining keeps the order).
    pub fn iter(&self) -> impl Iterator<Item = (&ConnId, &V)> + '_ {
        self.one.iter().map(|(k, v)| (k, v)).chain(self.rest.iter())
    }

    /// Ids and states, in id order, the states to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&ConnId, &mut V)> + '_ {
        self.one
            .iter_mut()
            .map(|(k, v)| (&*k, v))
            .chain(self.rest.iter_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn id(n: u64) -> ConnId {
        ConnId(n)
    }

    #[test]
    fn behaves_as_a_btree_map() {
        // Every sequence of inserts and removes over a few ids, checked
        // against BTreeMap after each step.
        let ops: Vec<(bool, u64)> = (0..6).flat_map(|k| [(true, k), (false, k)]).collect();
        for seed in 0u64..2000 {
            let mut map = ConnMap::new();
            let mut model = BTreeMap::new();
            let mut x = seed;
            for step in 0..12u64 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let (ins, k) = ops[(x >> 33) as usize % ops.len()];
                if ins {
                    assert_eq!(map.insert(id(k), step), model.insert(id(k), step));
                } else {
                    assert_eq!(map.remove(&id(k)), model.remove(&id(k)));
                }
                assert_eq!(map.len(), model.len());
                assert_eq!(map.is_empty(), model.is_empty());
                let got: Vec<_> = map.iter().map(|(k, v)| (*k, *v)).collect();
                let want: Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
                assert_eq!(got, want);
                for k in 0..6 {
                    assert_eq!(map.get(&id(k)), model.get(&id(k)));
                    assert_eq!(map.contains_key(&id(k)), model.contains_key(&id(k)));
                }
            }
            for v in map.values_mut() {
                *v += 100;
            }
            for v in model.values_mut() {
                *v += 100;
            }
            assert!(map.values().eq(model.values()));
            assert!(map.keys().eq(model.keys()));
            if let Some(k) = model.keys().next().copied() {
                *map.get_mut(&k).unwrap() += 1;
                *model.get_mut(&k).unwrap() += 1;
                assert!(map
                    .iter_mut()
                    .map(|(k, v)| (*k, *v))
                    .eq(model.iter_mut().map(|(k, v)| (*k, *v))));
            }
        }
    }
}
