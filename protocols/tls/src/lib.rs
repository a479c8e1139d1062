//! # twill-tls: TLS as a layer around any twill machine
//!
//! [`Tls<M>`](Tls) wraps any [`Machine`](twill_core::Machine) and is itself
//! one, as Twisted's `TLSMemoryBIOProtocol` wraps any protocol: ciphertext
//! from the driver goes to rustls (`read_tls` from the byte slice),
//! plaintext from rustls to the inner machine, the inner machine's
//! `Transmit`s through rustls's writer and `write_tls` into one reused
//! buffer and out as `Transmit`. Drivers know nothing about TLS, so TLS,
//! STARTTLS, SNI and ALPN work on every driver.
//!
//! ## Sessions
//! One rustls session per connection. A session starts
//! - by **listener policy** ([`Accept`]): connections accepted on `ssl:`
//!   listeners get a server session;
//! - by **connect policy** ([`Tls::connect`]): connections the driver made
//!   for a `tls:` client endpoint, and those the inner machine opens with
//!   `Open::Connect` (SNI and verification for its host), get a client
//!   session;
//! - by **`StartTls`**: the inner machine emits
//!   `Open { conn, how: StartTls { role, server_name, .. } }` and the layer
//!   answers it itself (the driver never sees it) with `Secured` or
//!   `OpenFailed` (`Tls(..)`, `TimedOut`, or `Unsupported` without a
//!   configuration).
//!
//! On a policy connection the inner machine sees nothing until the
//! handshake completes; then `Accepted`/`Opened` (with the original
//! addresses) and at once `Secured { info }` ([`TlsInfo`](twill_core::TlsInfo):
//! ALPN, SNI, peer certificates, version and the RFC 9266 `tls-exporter`
//! value, 32 bytes). A failed handshake is never shown to it: the
//! application gets [`TlsEvent::Failed`], the connection closes after the
//! alert, and other connections carry on.
//!
//! ## STARTTLS and the injection defence
//! Plaintext that arrived after the STARTTLS command and before the
//! handshake is an error, never carried into the session. The layer
//! enforces the part it can see: an inner machine hands over by taking the
//! bytes up to the end of its command and no more (a short take) and
//! emitting `StartTls` after its go-ahead reply. If at that moment the
//! driver still holds untaken bytes of that connection, they were sent
//! before the peer could have seen the go-ahead: the session never starts,
//! the inner machine gets `OpenFailed(Tls(..))`, the application
//! [`Failure::PlaintextAfterStartTls`], and the connection is aborted.
//! Everything arriving after `StartTls` is ciphertext to rustls: plaintext
//! there is a protocol error (alert, close). Bytes the inner machine itself
//! took past its command are its own to refuse.
//!
//! ## Backpressure and `Sent`
//! Decrypted bytes the inner machine did not take are kept (up to
//! [`Tls::with_plaintext_limit`], 64 KiB) and offered again when it emits
//! `Resume`; above the limit the layer takes no more ciphertext (a short
//! take) and resumes the driver when the backlog drains. The inner machine
//! sees `Sent` for its plaintext bytes once **all ciphertext that carries
//! them** is reported flushed (exact, not proportional); handshake,
//! alert and ticket bytes are never reported to it.
//!
//! ## Ends
//! The inner machine's `Close::Graceful` (or `WriteHalf`) sends
//! close_notify first; `Abort` does not. The peer's EOF reaches the inner
//! machine as `Eof { clean: true }` only after a close_notify; without one
//! it is `Eof { clean: false }` (truncation).
//!
//! ## Limits
//! - **File payloads are refused**: TLS needs the bytes, so inner machines
//!   must be built without `Payload::File` (plain connections of the same
//!   machine may still use it). A file payload on a TLS connection aborts
//!   that connection and the next `handle_input` returns
//!   [`TlsError::FilePayload`].
//! - Handshakes time out ([`Tls::with_handshake_timeout`], 10 s; the
//!   deadline is part of `Wait`).
//! - Time: rustls reads the wall clock through a [`WallClock`] that every
//!   `Now` updates, never the system clock.
//! - The crypto provider is ring (quick to build; see BENCHMARKS.md).
//! - Session resumption is rustls's default (in-memory caches;
//!   a client resumes per server name). `StartTls { resume_from }` is
//!   accepted but resumption is by name.
//!
//! ## The drain rule and promises
//! After every mutation call `poll_output` until `Wait`. The layer never
//! panics on input; a peer's misbehaviour is an event and a close of that
//! connection, never `Err`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod config;
pub mod demo;
pub mod layer;
pub mod service;

pub use config::{ClientAuth, ClientSetup, ConfigError, ServerSetup, WallClock};
pub use layer::{Accept, Failure, Tls, TlsContext, TlsError, TlsEvent};
pub use rustls;
pub use service::TlsService;
