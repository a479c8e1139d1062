//! # twill-driver: what every twill driver shares
//!
//! The std, mio and tokio drivers differ in how they move bytes, not in
//! what the machine contract means. This crate holds the part they share:
//! the [`engine::Engine`] that hosts machines and their services (itself
//! sans-IO: the driver reports socket events and carries out actions),
//! socket setup from endpoints ([`net`]), the clocks ([`clock`]) and the
//! pool for blocking work ([`pool`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod clock;
pub mod engine;
pub mod net;
pub mod pool;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{Action, AtCapacity, Chunk, Engine, EngineConfig, Key, Mode, SlotId};
pub use net::{bind, BindError, Bound};
pub use pool::{os_rng, Pool};
pub mod running;
pub use running::{LocalAddr, Running, ServeOptions, SlotHandle};
/// The map of the drivers' own ids (sockets, connections, slots): keys are
/// never chosen by a peer, so a fast non-keyed hash is safe.
pub type IdMap<K, V> = rustc_hash::FxHashMap<K, V>;
pub mod queue;
pub use queue::WriteQueue;
