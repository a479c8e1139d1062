//! # twill-basic: framings and the small RFC services
//!
//! Twisted's `protocols.basic` and its little Internet services, as
//! sans-IO machines that any twill driver runs:
//!
//! - [`codec`]: pure framing codecs — [`Lines`] (LF or
//!   strict CRLF), [`Netstring`] and
//!   [`Prefixed`] (8/16/32-bit big-endian lengths) —
//!   behind one [`Codec`] trait;
//! - [`Framed`]: one machine over any codec, for any number of
//!   connections, client or server;
//! - the services: [`Echo`] (RFC 862), [`Discard`] (RFC 863),
//!   [`Chargen`] (RFC 864), [`Qotd`] (RFC 865), [`Daytime`] (RFC 867), over
//!   TCP and UDP alike;
//! - [`Chat`]: a hub relaying each client's lines to all the others.
//!
//! ## The drain rule
//! After every mutation — `handle_input`, `handle_timeout`, or a command
//! such as [`Framed::send`] or [`Chat::broadcast`] — call `poll_output`
//! until it returns `Output::Wait`. There is no other ordering rule. None
//! of these machines sets a timer, so `Wait` never carries a deadline.
//!
//! ## Promises
//! - **No panic on any input.** Every byte a peer sends, in any chunking,
//!   and every sequence of inputs is handled without panicking; the fuzz
//!   targets in `fuzz/` check exactly that.
//! - **Bounded memory.** A partial frame is bounded by its codec's limit
//!   (detected at the earliest byte that proves it), and unflushed output
//!   by an [`OutputBudget`](twill_core::OutputBudget) per connection: echo
//!   and chargen stop taking or producing above the high-water mark, the
//!   chat hub drops a client that does not read.
//! - **A peer's violation is never `Err`.** It is an event plus a close of
//!   that connection alone. `Err` is only returned by commands the
//!   application misused ([`Error`]); `handle_input` never fails.
//! - **Chunking never matters**: the tests run every spec vector whole,
//!   byte at a time and split at random points.
//! - Time enters only as `Now` and randomness only as an injected
//!   [`Rng`](twill_core::rng::Rng); nothing here reads a clock, sleeps or
//!   touches a socket.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod chargen;
pub mod chat;
pub mod codec;
pub mod daytime;
pub mod discard;
pub mod echo;
pub mod error;
pub mod framed;
pub mod oneshot;
pub mod qotd;
pub mod service;

pub use chargen::Chargen;
pub use chat::{Chat, ChatEvent};
pub use codec::{Codec, LineEnding, Lines, Netstring, Prefix, Prefixed};
pub use daytime::{Daytime, DaytimeFormat};
pub use discard::Discard;
pub use echo::Echo;
pub use error::{Error, FramingError};
pub use framed::{Framed, FramedEvent};
pub use oneshot::OneShot;
pub use qotd::Qotd;
pub use service::ServiceEvent;
