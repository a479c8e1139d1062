//! # twill-ftp: FTP as sans-IO machines
//!
//! RFC 959 with FEAT/OPTS (RFC 2389), EPSV/EPRT (RFC 2428), SIZE, MDTM,
//! MLSD/MLST and REST STREAM (RFC 3659), UTF-8 paths (RFC 2640) and AUTH
//! TLS/PBSZ/PROT (RFC 4217: both machines ask the TLS layer for each
//! session, the control connection's and every protected data
//! connection's, with `Open { StartTls }`).
//!
//! - [`codec`]: pure parsing and encoding of commands, replies,
//!   data-connection addresses, listings and TYPE A text;
//! - [`server::Server`]: the server machine — control connection and every
//!   data connection in one machine, which asks the driver to listen or
//!   connect for each data channel (`Output::Open`) and never touches a
//!   file: the application does the file-system work it requests;
//! - [`path::VPath`]: client paths resolved lexically inside the served
//!   tree.
//!
//! ## The drain rule
//! After every mutation — `handle_input`, `handle_timeout`, or a command
//! method — call `poll_output` until it returns `Output::Wait`.
//!
//! ## Promises
//! - **No panic on any input**, in any chunking (fuzzed in `fuzz/`).
//! - **Bounded**: command lines (500 past [`server::ServerConfig::max_line`]
//!   and the rest of the line dropped), unflushed replies (the control
//!   connection is not read while they pile up), upload bytes the
//!   application has not consumed, download bytes not yet flushed.
//! - **A peer's violation is never `Err`**: it is the RFC's reply and an
//!   event; `Err` is only returned by the application's misuse of commands.
//! - Time enters as `Now`; nothing here reads a clock or touches a socket.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod client;
pub mod codec;
pub mod error;
pub mod path;
pub mod server;

pub use client::{Client, ClientConfig, ClientError, ClientEvent, OpId, Outcome};
pub use codec::reply::{Reply, ReplyParser};
pub use error::{Error, Violation};
pub use path::VPath;
pub use server::{FsError, ListFormat, Op, RequestId, Server, ServerConfig, ServerEvent};
