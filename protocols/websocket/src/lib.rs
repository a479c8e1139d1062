//! # twill-websocket: WebSocket (RFC 6455) and permessage-deflate (RFC 7692)
//!
//! - [`codec`]: pure functions — frame headers with minimal length
//!   encoding, masking eight bytes at a time, close payloads and code
//!   rules, incremental UTF-8 validation;
//! - [`handshake`]: the opening handshake on top of twill-http's Upgrade
//!   hand-over ([`twill_core::Switch`] continues an HTTP connection with a
//!   [`WebSocket`]): key and accept, version 13 (426 otherwise),
//!   subprotocol and extension negotiation, Origin and every header for
//!   the application to decide on;
//! - [`WebSocket`]: one connection after the handshake, server or client
//!   role: fragmentation with interleaved control frames, the close
//!   handshake with its code rules and a closing timeout, automatic pongs,
//!   keep-alive pings with a deadline, frame and message limits (1009),
//!   streaming delivery, backpressure;
//! - [`deflate`]: permessage-deflate negotiation and the per-message codec
//!   with a limit on the decompressed size.
//!
//! ## The drain rule
//! After every mutation — `handle_input`, `handle_timeout`, or a command
//! such as [`WebSocket::send`] — call `poll_output` until it returns
//! `Output::Wait`.
//!
//! ## Promises
//! - **No panic on any input**, in any chunking (fuzzed: frame parser,
//!   both roles' machines, the inflate path).
//! - **Bounded memory**: frames, messages (after decompression) and
//!   unflushed output have limits ([`Config`]).
//! - **A peer's violation is never `Err`**: it is answered with a close
//!   frame carrying [`ProtocolError::close_code`], reported as
//!   [`WsEvent::Violation`], and the connection closes. `Err` ([`Error`])
//!   only means the application misused a command.
//! - Time and randomness enter from outside (`Now`, an RNG for the
//!   client's masking keys).
//!
//! Unlike its no_std siblings this crate needs std: flate2 does.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod codec;
pub mod deflate;
pub mod error;
pub mod handshake;
pub mod machine;

pub use codec::CloseCode;
pub use deflate::{DeflateConfig, DeflateParams};
pub use error::{Error, ProtocolError};
pub use handshake::{Accepted, ClientHandshake, HandshakeError, Negotiated, ServerHandshake};
pub use machine::{Config, Kind, Role, WebSocket, WsEvent};
