//! # twill-core: the contract every twill protocol keeps
//!
//! A protocol is a [`Machine`]: bytes and time go in as [`Input`]s, bytes,
//! events and requests come out as [`Output`]s. It never touches a socket,
//! a clock, a thread or a runtime, so the same code runs under the std,
//! mio and tokio drivers, a GUI's main loop, a fuzzer or a test with a
//! virtual clock.
//!
//! The rules (see `DESIGN.md` for the reasoning):
//! - **Drain after every mutation**: after `handle_input`, `handle_timeout`
//!   or any command, call `poll_output` until [`Output::Wait`].
//! - **Time and randomness come in**: [`Now`] with every input, an
//!   [`rng::Rng`] at construction.
//! - **Backpressure per connection**: a short take pauses that connection
//!   until [`Output::Resume`]; [`Input::Sent`] reports flushed output, which
//!   [`limits::OutputBudget`] turns into stop/go decisions. A machine may
//!   decline a report it has no use for ([`Machine::wants_sent`]); its
//!   bytes then go with the next one.
//! - **Every input is bounded** ([`limits`]), and a peer's violation is
//!   answered and closed per connection, never `Err`.
//! - **Chunking never matters**: [`testing::assert_chunking`] proves it.
//! - **Never panic on input.**
//!
//! Besides the contract this crate holds the endpoint grammar
//! ([`endpoint`]), the driver-neutral application interface ([`service`]),
//! the protocol-switch combinator ([`switch::Switch`]), the testing kit
//! ([`testing`]), and the pieces the text protocols share: bounded CRLF
//! line reading ([`line`]), the `CRLF . CRLF` dot framing of SMTP's DATA
//! and POP3's multi-line responses ([`dot`]), and SASL PLAIN/LOGIN
//! ([`sasl`]).
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod conn_map;
pub mod dot;
pub mod endpoint;
pub mod id;
pub mod io;
pub mod limits;
pub mod line;
pub mod link;
pub mod machine;
pub mod queue;
pub mod rng;
pub mod sasl;
pub mod service;
pub mod switch;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;

pub use conn_map::ConnMap;
pub use endpoint::{ClientEndpoint, EndpointError, ServerEndpoint};
pub use id::{ConnId, IdAllocator, ListenerId, SockId};
pub use io::{
    Addr, Close, FileId, Input, MulticastOp, Open, OpenError, Output, Payload, Role, TlsInfo,
};
pub use limits::{LimitExceeded, LimitKind, OutputBudget};
pub use link::Link;
pub use machine::Machine;
pub use queue::OutQueue;
pub use service::{Cx, Handle, Service};
pub use switch::{Switch, SwitchEvent};
pub use time::{Duration, Instant, Now, UnixTime};

pub use bytes;
