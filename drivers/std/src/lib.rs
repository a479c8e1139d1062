//! # twill-std: the blocking driver
//!
//! Runs any twill [`Machine`](twill_core::Machine) over real sockets with
//! plain threads and blocking I/O — no reactor, no runtime.
//!
//! - **Servers**: [`spawn`] binds the endpoints of a
//!   [`ServeOptions`] and serves them on
//!   background threads until [`Running::stop`].
//!   Every machine host ([`Engine`](twill_driver::Engine)) gets one *machine
//!   thread* that owns it and receives everything that happens to its
//!   sockets through one channel; each stream socket has a reader thread
//!   (blocking reads, paused by backpressure) and a writer thread (vectored
//!   writes, `sendfile`, graceful close), so a peer that does not read never
//!   blocks timers, reads or other connections. In hub mode one engine
//!   serves every connection; in factory mode each accepted connection gets
//!   an engine — and so a thread — of its own, up to the connection cap.
//! - **Clients**: [`Conn`] drives one machine over one connection from the
//!   caller's thread: [`Conn::next_event`], [`Conn::flush`].
//!
//! ```no_run
//! use twill_core::service::Ignore;
//! use twill_driver::ServeOptions;
//!
//! let opts = ServeOptions::factory(vec!["tcp:7007".parse().unwrap()]);
//! let running = twill_std::spawn(opts, || (twill_basic::echo::Echo::new(), Ignore))?;
//! println!("echo on {}", running.addr());
//! running.wait()?; // until `stop()` from another thread
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod event_loop;
mod server;
mod socket;

pub use client::{Conn, Events};
pub use server::spawn;
pub use twill_driver::{BindError, LocalAddr, Running, ServeOptions, SlotHandle};
