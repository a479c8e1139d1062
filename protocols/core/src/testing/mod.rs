//! The testing kit: a virtual clock, a simulated driver for one machine
//! ([`Sim`]), an in-memory client/server [`Pair`], and the chunking check
//! every protocol runs on its vectors ([`assert_chunking`]) and the loader
//! of the spec-vector files ([`parse_vector`], [`load_vectors`]).

mod chunking;
mod pair;
mod sim;
mod vectors;

pub use chunking::{assert_chunking, chunkings, Chunking, Step, Trace};
pub use pair::Pair;
pub use sim::Sim;
#[cfg(feature = "std")]
pub use vectors::{load_vector, load_vectors};
pub use vectors::{
    parse_vector, unescape, unhex, Body, Case, Class, Escaped, Outcome, Pattern, Side, Turn,
    Vector, VectorError,
};

use crate::time::{Duration, Instant, Now, UnixTime};

/// A clock that moves only when told to.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    now: Now,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// Starts at monotonic zero and wall time 2026-01-01T00:00:00Z.
    pub fn new() -> Self {
        Clock {
            now: Now::new(Instant::ZERO, UnixTime::from_secs(1_767_225_600)),
        }
    }

    /// The current time.
    pub fn now(&self) -> Now {
        self.now
    }

    /// Moves both clocks forward.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.after(d);
    }

    /// Moves forward to `t` if it is later.
    pub fn advance_to(&mut self, t: Instant) {
        if t > self.now.mono {
            self.advance(t - self.now.mono);
        }
    }
}
