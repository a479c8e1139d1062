//! # twill
//!
//! Network protocols as pure state machines ("sans-IO") with
//! interchangeable drivers that supply the transport — the ideas of
//! Python's Twisted, done the way quinn-proto, rustls and str0m do them.
//!
//! This facade re-exports the crates:
//! - [`core`] — the machine contract, endpoints, the service interface and
//!   the testing kit;
//! - [`basic`] — framings (lines, netstrings, length prefixes) and the
//!   small RFC services (echo, discard, chargen, daytime, qotd) plus a
//!   chat hub;
//! - [`http`] — HTTP/1.1 client and server machines and the handler API;
//! - [`driver`] — what the drivers share (the engine, sockets, `Running`);
//! - [`tls`] — TLS as a layer around any machine (`ssl:` endpoints);
//! - [`irc_proto`] — IRC: codec, client machine, server hub machine;
//! - [`std_driver`], [`mio_driver`], [`tokio_driver`] — the drivers.
//!
//! The `twill` command (`src/main.rs`) serves each protocol from the
//! command line.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use twill_basic as basic;
pub use twill_core as core;
pub use twill_driver as driver;
pub use twill_http as http;
pub use twill_irc as irc_proto;
pub use twill_mio as mio_driver;
pub use twill_std as std_driver;
pub use twill_tls as tls;
pub use twill_tokio as tokio_driver;

pub mod cli;
pub mod client_tls;
pub mod ftp;
pub mod get;
pub mod irc;
pub mod serve_tls;
pub mod users;
pub mod web;
pub use twill_websocket as websocket;
pub mod ws;
pub use twill_pop3 as pop3;
pub use twill_smtp as smtp;
pub mod mail;
