//! # twill-tokio: the async driver
//!
//! Runs any twill [`Machine`](twill_core::Machine) over tokio's sockets —
//! TCP, Unix stream sockets and UDP with multicast — keeping the machine
//! contract through the shared [`twill_driver::Engine`]: every drain is
//! carried out, short takes pause only their connection until `Resume`,
//! flushed bytes come back as `Sent`, timers fire, `Close` is answered by
//! `Closed`, and every `Open` by `Opened` or `OpenFailed`.
//!
//! Three ways in:
//! - [`spawn`]: the uniform entry point of every twill driver — binds
//!   `ServeOptions`' endpoints and serves on a runtime of its own until
//!   [`Running::stop`](twill_driver::Running::stop).
//! - [`serve`]: the same inside a runtime you own; [`Server::run`] is the
//!   future that serves.
//! - [`Conn`]: one machine on one connection, driven by awaiting
//!   [`Conn::next_event`] and [`Conn::flush`] — as a client
//!   ([`Conn::connect`]) or per accepted connection ([`serve_with`]).
//!
//! Each engine runs on one task that owns its sockets and serves them by
//! readiness (see `reactor`), so nothing a machine was given is ever held
//! by a future, and dropping any future of this crate loses nothing.
//! Blocking work (`Cx::spawn_blocking`, name resolution) runs on tokio's
//! blocking pool.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod conn;
mod io;
mod reactor;
mod server;
mod socks;

pub use conn::{serve_listener, serve_with, Conn, Listener};
pub use reactor::Stopper;
pub use server::{serve, spawn, Server};
