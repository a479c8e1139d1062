use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt::Debug;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::Sim;
use crate::id::ConnId;
use crate::io::Close;
use crate::machine::Machine;
use crate::time::Duration;

/// One step of a script run against a machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A connection is accepted.
    Accept(ConnId),
    /// A connection opened by the driver for a client machine.
    Opened(ConnId),
    /// Bytes arrive (split according to the [`Chunking`]).
    Data(ConnId, Vec<u8>),
    /// The peer finished sending.
    Eof(ConnId),
    /// Time passes.
    Advance(Duration),
}

/// How `Data` steps are cut into reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunking {
    /// Each step in one read.
    Whole,
    /// One byte per read.
    ByteAtATime,
    /// Random cut points from this seed.
    Random(u64),
}

/// The standard set: whole, byte-at-a-time and eight random splittings.
pub fn chunkings() -> Vec<Chunking> {
    let mut v = alloc::vec![Chunking::Whole, Chunking::ByteAtATime];
    v.extend((1..=8).map(Chunking::Random));
    v
}

/// What a machine did over a script, independent of how its output was
/// cut: events in order, transmitted bytes per connection, closes.
#[derive(Debug, PartialEq)]
pub struct Trace<E> {
    /// Events in order.
    pub events: Vec<E>,
    /// Every byte transmitted, per connection.
    pub sent: BTreeMap<ConnId, Vec<u8>>,
    /// Closes in order.
    pub closes: Vec<(ConnId, Close)>,
}

impl<E> Trace<E> {
    /// The transmitted bytes of `conn` as text (lossy).
    pub fn sent_text(&self, conn: ConnId) -> alloc::string::String {
        alloc::string::String::from_utf8_lossy(self.sent.get(&conn).map_or(&[][..], |v| v))
            .into_owned()
    }
}

/// Runs `steps` against a fresh machine, cutting data as `chunking` says.
pub fn run<M: Machine>(machine: M, steps: &[Step], chunking: Chunking) -> Trace<M::Event>
where
    M::Event: Debug,
{
    let mut sim = Sim::new(machine);
    let mut rng = match chunking {
        Chunking::Random(seed) => Some(ChaCha8Rng::seed_from_u64(seed)),
        _ => None,
    };
    for step in steps {
        match step {
            Step::Accept(c) => sim.accept(*c),
            Step::Opened(c) => sim.opened(*c),
            Step::Eof(c) => sim.eof(*c),
            Step::Advance(d) => sim.advance(*d),
            Step::Data(c, bytes) => match chunking {
                Chunking::Whole => sim.data(*c, bytes),
                Chunking::ByteAtATime => {
                    for b in bytes {
                        sim.data(*c, core::slice::from_ref(b));
                    }
                }
                Chunking::Random(_) => {
                    let rng = rng.as_mut().expect("seeded");
                    let mut rest = &bytes[..];
                    while !rest.is_empty() {
                        // Mostly small pieces, sometimes large ones.
                        let max = if rng.next_u32() % 4 == 0 {
                            rest.len()
                        } else {
                            16
                        };
                        let n = 1 + (rng.next_u32() as usize) % max.min(rest.len());
                        sim.data(*c, &rest[..n]);
                        rest = &rest[n..];
                    }
                }
            },
        }
    }
    if let Some(e) = &sim.error {
        panic!("machine returned an error under {chunking:?}: {e}");
    }
    Trace {
        events: sim.events,
        sent: sim.sent,
        closes: sim.closes,
    }
}

/// Runs `steps` whole, byte-at-a-time and with random splits against fresh
/// machines from `make`, asserts every run gives the same [`Trace`], and
/// returns it for further assertions.
pub fn assert_chunking<M: Machine>(mut make: impl FnMut() -> M, steps: &[Step]) -> Trace<M::Event>
where
    M::Event: Debug + PartialEq,
{
    let whole = run(make(), steps, Chunking::Whole);
    for c in chunkings().into_iter().skip(1) {
        let other = run(make(), steps, c);
        assert_eq!(other, whole, "{c:?} differs from a whole read");
    }
    whole
}
