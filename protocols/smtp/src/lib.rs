//! # twill-smtp: SMTP as sans-IO machines
//!
//! SMTP (RFC 5321) with the extensions today's clients use — SIZE
//! (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), PIPELINING
//! (RFC 2920), ENHANCEDSTATUSCODES (RFC 2034/3463), CHUNKING/BDAT
//! (RFC 3030), AUTH PLAIN and LOGIN (RFC 4954) and STARTTLS (RFC 3207,
//! through the `twill-tls` layer's `Open { how: StartTls }`) — as machines
//! any twill driver runs:
//!
//! - [`codec`]: pure functions — command lines parsed without copying,
//!   replies written and parsed, the incremental DATA [`Unstuffer`] (the
//!   end-of-data marker is found however the bytes are split) and
//!   dot-stuffing, SASL PLAIN;
//! - [`Server`]: the server machine for one connection;
//! - [`Client`]: the client machine: EHLO with HELO fallback, STARTTLS,
//!   AUTH, pipelined envelopes when offered, per-recipient results.
//!
//! The machines know nothing about password hashes or disks: the server
//! asks the application to check credentials ([`ServerEvent::Auth`]) and to
//! store each message ([`ServerEvent::Message`]), and answers the client
//! only when told.
//!
//! ## The drain rule
//! After every mutation — `handle_input`, `handle_timeout`, or a command
//! such as [`Server::answer_message`] or [`Client::send_mail`]  — call
//! `poll_output` until it returns `Output::Wait`.
//!
//! ## Promises
//! - **No panic on any input**, in any chunking (fuzzed: commands, the
//!   unstuffer, the server machine).
//! - **Bounded memory**: command lines, messages (SIZE), message lines,
//!   recipients, errors and unflushed output all have limits
//!   ([`ServerConfig`]), enforced at the earliest byte that proves them.
//! - **A peer's violation is never `Err`**: it gets the RFC's reply code
//!   (500, 501, 503, 552, 421 …), a [`ServerEvent::Violation`], and where
//!   needed a close. `Err` ([`Error`]) only means the application misused
//!   a command.
//! - **Chunking never matters**: the spec vectors run whole, byte at a
//!   time and split at random.
//! - Time enters only as `Now`; nothing here reads a clock, sleeps or
//!   touches a socket.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod client;
pub mod codec;
pub mod error;
pub mod server;

pub use client::{
    Client, ClientConfig, ClientEvent, Envelope, Failure, RcptResult, SendResult, StartTls,
};
pub use codec::dot::Unstuffer;
pub use codec::reply::Reply;
pub use codec::sasl::Credentials;
pub use error::{Error, Violation};
pub use server::{Delivery, Message, RecipientCheck, Server, ServerConfig, ServerEvent};
