//! # twill-http: HTTP/1.1 as sans-IO machines
//!
//! HTTP/1.1 messaging (RFC 9112) with the semantics it needs from
//! RFC 9110, as machines any twill driver runs:
//!
//! - [`codec`]: pure functions — request and response heads parsed (in
//!   one pass of our own when they arrive whole, by `httparse` otherwise)
//!   into zero-copy [`RequestHead`] / [`ResponseHead`] (the head is one
//!   `Bytes`, every field a range of it), head serialization, the
//!   body-framing rules ([`BodyKind`]) and a strict incremental chunked
//!   decoder and encoder;
//! - [`Server`]: the server machine, for any number of connections (a
//!   factory's per-connection machine or a hub): keep-alive and HTTP/1.0
//!   rules, pipelined requests answered strictly in order, `Expect:
//!   100-continue`, HEAD, 1xx, bodies streamed both ways with
//!   backpressure, a cached `Date`, header and idle timeouts, and
//!   Upgrade/CONNECT hand-over to another machine
//!   ([`twill_core::Switch`]);
//! - [`Client`]: the client machine: requests with streamed bodies,
//!   responses of every framing, keep-alive reuse, opt-in pipelining,
//!   Upgrade/CONNECT;
//! - [`app`]: handlers written once ([`Handler`]) and hosted by every
//!   driver through [`App`], a [`twill_core::Service`] over [`Server`].
//!
//! ## Driving the server by hand
//!
//! ```
//! use bytes::Bytes;
//! use twill_core::{Addr, ConnId, Input, ListenerId, Machine, Now, Output, Payload};
//! use twill_http::{Server, ServerEvent};
//!
//! let mut server = Server::default();
//! let (now, conn) = (Now::default(), ConnId(1));
//! let accepted = Input::Accepted {
//!     conn,
//!     listener: ListenerId(0),
//!     local: Addr::Unknown,
//!     peer: Addr::Unknown,
//! };
//! server.handle_input(now, accepted).unwrap();
//! let bytes = b"GET /hi HTTP/1.1\r\nHost: example.com\r\n\r\n";
//! assert_eq!(server.handle_input(now, Input::Data { conn, bytes }).unwrap(), bytes.len());
//! let mut requests = Vec::new();
//! loop {
//!     match server.poll_output() {
//!         Output::Event(ServerEvent::Request(r)) => requests.push(r),
//!         Output::Wait { .. } => break,
//!         _ => {}
//!     }
//! }
//! assert_eq!(requests[0].head.target(), "/hi");
//! server
//!     .respond_full(requests[0].id, 200, &[("Content-Type", "text/plain")], Bytes::from_static(b"hello"))
//!     .unwrap();
//! let mut wire = Vec::new();
//! loop {
//!     match server.poll_output() {
//!         Output::Transmit { payload: Payload::Bytes(b), .. } => wire.extend_from_slice(&b),
//!         Output::Wait { .. } => break,
//!         _ => {}
//!     }
//! }
//! assert!(wire.starts_with(b"HTTP/1.1 200 OK\r\n"));
//! assert!(wire.ends_with(b"Content-Length: 5\r\n\r\nhello"));
//! ```
//!
//! ## The drain rule
//! After every mutation — `handle_input`, `handle_timeout`, or a command
//! such as [`Server::respond`] or [`Client::request`] — call
//! `poll_output` until it returns `Output::Wait`. There is no other
//! ordering rule.
//!
//! ## Promises
//! - **No panic on any input**, in any chunking; the fuzz targets in
//!   `fuzz/` check request, response and chunked parsing and the server
//!   machine under arbitrary input sequences.
//! - **Bounded memory**: the request line, the head, the number of fields,
//!   chunk extensions, trailers, bodies, pipelined requests and unflushed
//!   output all have limits ([`ServerConfig`], [`ClientConfig`]); a limit
//!   is enforced at the earliest byte that proves it, and a partial head is
//!   never rescanned.
//! - **A peer's violation is never `Err`**: the server answers with the
//!   status of the [`ProtocolError`] where a response is still possible
//!   (400, 408, 413, 414, 431, 501, 505), reports it as an event and
//!   closes that connection alone. `Err` ([`Error`]) only means the
//!   application misused a command.
//! - **Chunking never matters**: every spec vector runs whole, byte at a
//!   time and split at random.
//! - Time enters only as `Now`; nothing here reads a clock, sleeps or
//!   touches a socket.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod app;
mod batch;
pub mod client;
pub mod codec;
pub mod error;
pub mod server;

pub use app::{App, Handler};
pub use client::{Client, ClientConfig, ClientEvent};
pub use codec::{BodyKind, Headers, RequestHead, ResponseHead, Version};
pub use error::{Error, ProtocolError};
pub use server::{Request, RequestId, Server, ServerConfig, ServerEvent};
