//! # twill-irc: IRC as sans-IO machines
//!
//! The counterpart of Twisted's `words.protocols.irc`, grown to what IRC
//! software expects today:
//!
//! - [`codec`]: RFC 1459/2812 messages with IRCv3 tags, parsed without
//!   copying ([`Message`]) and written by an [`Encoder`] that cannot put
//!   CR, LF or NUL inside a message; CTCP, numerics, ISUPPORT, case
//!   mapping;
//! - [`Server`]: an IRC server as *one* hub machine over every client
//!   connection, so the whole network is deterministic under a virtual
//!   clock and fuzzable with interleaved input from many clients;
//!
//! ## The drain rule
//! After every mutation — `handle_input`, `handle_timeout` or a command
//! such as [`Server::notice_all`] — call `poll_output` until `Output::Wait`,
//! and call `handle_timeout` at the deadline `Wait` names.
//!
//! ## Promises
//! - **No panic on any input**, in any chunking (fuzzed).
//! - **Bounded memory**: lines are at most 8191 + 512 bytes, every
//!   client's queued output is bounded (a server disconnects a client
//!   that does not read), input is rate-limited per client.
//! - **A peer's violation is never `Err`**: it is answered (417, `ERROR`)
//!   and, if it must be, that one connection is closed.
//! - Time enters only as `Now`; nothing here reads a clock or a socket.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod codec;
pub mod error;
pub mod server;

pub use codec::{CaseMapping, Encoder, Isupport, Message};
pub use error::{EncodeError, Error, LineError, ParseError};
pub use server::{Server, ServerConfig, ServerEvent};
