//! # twill-pop3: POP3 as sans-IO machines
//!
//! POP3 (RFC 1939) with CAPA and response codes (RFC 2449), STLS
//! (RFC 2595, through the `twill-tls` layer's `Open { how: StartTls }`),
//! AUTH PLAIN (RFC 5034), APOP, TOP and UIDL:
//!
//! - [`codec`]: command lines parsed without copying, status lines, TOP's
//!   cut of a message, the APOP digest;
//! - [`Server`]: the server machine for one connection. It knows nothing
//!   about disks or password hashes: it asks the application to check a
//!   login and list the maildrop, to read a message, and to remove the
//!   deleted ones — only in the UPDATE state after QUIT, so a dropped
//!   connection loses nothing;
//! - [`Client`]: the client machine: login (USER/PASS or APOP, STLS
//!   first when offered), commands answered in order, multi-line
//!   responses dot-unstuffed.
//!
//! Multi-line responses use the same dot framing as SMTP's DATA: the
//! stuffer and unstuffer, the line reader and SASL PLAIN come from
//! `twill-core` (`dot`, `line`, `sasl`), shared with `twill-smtp`.
//!
//! ## The drain rule
//! After every mutation — `handle_input`, `handle_timeout`, or a command
//! such as [`Server::answer_login`] — call `poll_output` until it returns
//! `Output::Wait`.
//!
//! ## Promises
//! - **No panic on any input**, in any chunking (the server machine is
//!   fuzzed).
//! - **Bounded memory**: command lines, errors and unflushed output have
//!   limits ([`ServerConfig`]).
//! - **A peer's violation is never `Err`**: it gets `-ERR` (and a close
//!   where it must); `Err` ([`Error`]) means the application misused a
//!   command.
//! - **Chunking never matters**: the spec vectors run whole, byte at a
//!   time and split at random.
//! - Time and randomness enter from outside (`Now`, the `Rng` for the
//!   APOP timestamp).
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod client;
pub mod codec;
pub mod error;
pub mod server;

pub use client::{Client, ClientConfig, ClientEvent, Failure, RequestId, Response};
pub use codec::apop_digest;
pub use error::{Error, Violation};
pub use server::{LoginFailure, MessageInfo, Proof, Server, ServerConfig, ServerEvent};
