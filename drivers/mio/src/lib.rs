//! # twill-mio: Twisted's reactor for twill machines
//!
//! One thread, many connections. A [`Reactor`] owns a `mio::Poll`, a
//! timer heap, a queue of calls from other threads and a bounded pool for
//! blocking work, and hosts any number of servers and clients, each an
//! `twill_driver::Engine` running twill machines and their
//! [`Service`](twill_core::Service)s (the application's callbacks).
//!
//! - [`Reactor::serve`] binds endpoints and serves a factory of
//!   per-connection machines or one hub machine; [`Reactor::connect`] runs
//!   a client machine on a connection the reactor opens.
//! - [`Reactor::call_later`] / [`Reactor::cancel`],
//!   [`ReactorHandle::call_from_thread`], [`Reactor::defer_to_thread`]:
//!   Twisted's `callLater`, `callFromThread` and `deferToThread`.
//! - [`Reactor::run`], [`Reactor::run_once`] and the poll's fd
//!   ([`std::os::fd::AsRawFd`]) so a foreign main loop can drive it.
//! - [`spawn`]: the entry point every twill driver offers, a reactor on a
//!   thread of its own serving one set of endpoints.
//!
//! Sockets are non-blocking and edge-triggered. A connection reads until
//! it would block, but yields after a bounded number of bytes per
//! iteration so one fast peer cannot starve the rest; it owns no read
//! buffer (reads go through one buffer the reactor shares) and allocates
//! a write queue only while output waits, so an idle connection costs
//! little beyond the kernel's buffers. Writes of queued chunks are
//! vectored, and WRITABLE interest is registered only while a queue is
//! non-empty.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod reactor;
mod server;

use std::io;
use std::sync::mpsc;

use twill_core::{Machine, Service};
use twill_driver::{BindError, Running, ServeOptions};

pub use reactor::{Reactor, ReactorHandle, ServerId, Serving, TimerId};

/// Serves `opts` on a reactor of its own thread until
/// [`Running::stop`] (or a service's stop request): listeners close,
/// connections are aborted and [`Running::wait`] returns.
pub fn spawn<M, S, F>(opts: ServeOptions, make: F) -> Result<Running<M>, BindError>
where
    M: Machine + Send + 'static,
    S: Service<M> + Send + 'static,
    S::Done: Send,
    F: FnMut() -> (M, S) + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let setup_error = |e: io::Error| BindError {
        endpoint: "mio reactor".into(),
        message: e.to_string(),
        kind: e.kind(),
    };
    let thread = std::thread::Builder::new()
        .name("twill-mio".into())
        .spawn(move || -> io::Result<()> {
            let mut reactor = match Reactor::new() {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(setup_error(io::Error::new(e.kind(), e.to_string()))));
                    return Err(e);
                }
            };
            match reactor.serve(opts, make) {
                Ok(s) => {
                    let _ = tx.send(Ok((s.local_addrs, s.hub, reactor.handle())));
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return Ok(());
                }
            }
            let r = reactor.run();
            reactor.close_all();
            r
        })
        .map_err(setup_error)?;
    match rx.recv() {
        Ok(Ok((addrs, hub, handle))) => Ok(Running::new(addrs, move || handle.stop(), thread, hub)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let e = match thread.join() {
                Ok(Err(e)) => e,
                _ => io::Error::other("the reactor thread died while starting"),
            };
            Err(setup_error(e))
        }
    }
}
