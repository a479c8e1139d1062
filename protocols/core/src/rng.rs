//! Randomness enters machines from outside, like time: a machine that needs
//! random values takes an [`Rng`] at construction, so tests and fuzzers can
//! replay it exactly. Drivers give an OS-seeded generator.

pub use rand_core::{CryptoRng, RngCore, SeedableRng};

/// The generator type machines hold.
pub type Rng = alloc::boxed::Box<dyn RngCore + Send>;

/// A deterministic generator from a seed, for tests and fuzzing.
#[cfg(feature = "testing")]
pub fn seeded(seed: u64) -> Rng {
    alloc::boxed::Box::new(rand_chacha::ChaCha8Rng::seed_from_u64(seed))
}
