//! Applications written once: a [`Service`] reacts to a machine's events,
//! calls its commands, runs blocking work off the event thread and sets
//! timers — all through [`Cx`], which every driver provides.

use alloc::boxed::Box;

use crate::io::FileId;
use crate::machine::Machine;
use crate::time::{Instant, Now};

/// Blocking work handed to the driver's pool.
pub type Work<D> = Box<dyn FnOnce() -> D + Send + 'static>;

/// What a driver offers a service: the parts of [`Cx`] that need the driver.
pub trait Host<D> {
    /// Runs `work` on a bounded pool; its result comes back through
    /// [`Service::on_done`] on the thread that owns the machine.
    fn spawn_blocking(&mut self, work: Work<D>);
    /// Calls [`Service::on_timer`] with `token` at or after `deadline`.
    fn call_at(&mut self, deadline: Instant, token: u64);
    /// Cancels every pending `call_at` with `token`.
    fn cancel_timer(&mut self, token: u64);
    /// Registers an open file for [`crate::io::Payload::File`]; the driver
    /// keeps it until [`Host::release_file`] or the machine is dropped.
    /// Shared, so that one open file (a cache's) can back many responses
    /// at once; payloads name their offsets, so nothing shares a cursor.
    #[cfg(feature = "std")]
    fn add_file(&mut self, file: alloc::sync::Arc<std::fs::File>) -> FileId;
    /// Forgets a registered file.
    fn release_file(&mut self, id: FileId);
    /// Asks the driver to stop serving (the `twill` command's shutdown).
    fn stop(&mut self);
}

/// The context of one service callback.
pub struct Cx<'a, M, D> {
    machine: &'a mut M,
    now: Now,
    host: &'a mut dyn Host<D>,
}

impl<'a, M: Machine, D> Cx<'a, M, D> {
    /// Made by drivers around each callback.
    pub fn new(machine: &'a mut M, now: Now, host: &'a mut dyn Host<D>) -> Self {
        Cx { machine, now, host }
    }

    /// The machine, to call its commands. The driver drains it after the
    /// callback returns.
    pub fn machine(&mut self) -> &mut M {
        self.machine
    }

    /// The same context over a machine inside this one (a layer's inner
    /// machine), so a service written for the inner machine runs
    /// unchanged under a wrapper such as TLS.
    pub fn map<N: Machine>(&mut self, f: impl FnOnce(&mut M) -> &mut N) -> Cx<'_, N, D> {
        Cx {
            machine: f(self.machine),
            now: self.now,
            host: self.host,
        }
    }

    /// The time of the event being handled.
    pub fn now(&self) -> Now {
        self.now
    }

    /// Runs blocking work (a password hash, a file read, an fsync) on the
    /// driver's pool; the result arrives through [`Service::on_done`].
    pub fn spawn_blocking(&mut self, work: impl FnOnce() -> D + Send + 'static) {
        self.host.spawn_blocking(Box::new(work));
    }

    /// Calls [`Service::on_timer`] with `token` at `deadline`.
    pub fn call_at(&mut self, deadline: Instant, token: u64) {
        self.host.call_at(deadline, token);
    }

    /// Cancels timers with `token`.
    pub fn cancel_timer(&mut self, token: u64) {
        self.host.cancel_timer(token);
    }

    /// Registers a file for `Payload::File`.
    #[cfg(feature = "std")]
    pub fn add_file(&mut self, file: impl Into<alloc::sync::Arc<std::fs::File>>) -> FileId {
        self.host.add_file(file.into())
    }

    /// Forgets a registered file.
    pub fn release_file(&mut self, id: FileId) {
        self.host.release_file(id);
    }

    /// Asks the driver to stop.
    pub fn stop(&mut self) {
        self.host.stop();
    }
}

/// An application over machine `M`, hosted unchanged by every driver.
///
/// In factory serving each connection's machine gets its own service value;
/// a hub machine has one.
pub trait Service<M: Machine> {
    /// Results of blocking work.
    type Done: Send + 'static;

    /// The machine emitted an event.
    fn on_event(&mut self, cx: &mut Cx<'_, M, Self::Done>, event: M::Event);

    /// Blocking work started with [`Cx::spawn_blocking`] finished.
    fn on_done(&mut self, cx: &mut Cx<'_, M, Self::Done>, done: Self::Done) {
        let _ = (cx, done);
    }

    /// A timer set with [`Cx::call_at`] fired.
    fn on_timer(&mut self, cx: &mut Cx<'_, M, Self::Done>, token: u64) {
        let _ = (cx, token);
    }

    /// The machine returned `Err` (application misuse). The driver drains
    /// what the machine queued and closes its connections afterwards.
    fn on_error(&mut self, error: &M::Error) {
        let _ = error;
    }
}

/// The service of machines whose events need no application: they are
/// dropped (echo, discard, chargen …).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ignore;

impl<M: Machine> Service<M> for Ignore {
    type Done = ();
    fn on_event(&mut self, _cx: &mut Cx<'_, M, ()>, _event: M::Event) {}
}

/// The machine a [`Handle`] points to is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gone;

impl core::fmt::Display for Gone {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the machine is gone")
    }
}

impl core::error::Error for Gone {}

/// A command for a machine, sent from another thread.
pub type Command<M> = Box<dyn FnOnce(&mut M) + Send + 'static>;

/// A thread-safe way to drive a machine a driver holds: the closure runs on
/// the thread that owns the machine, which then drains it.
pub trait Handle<M>: Clone + Send + 'static {
    /// Sends a boxed command.
    fn call_boxed(&self, f: Command<M>) -> Result<(), Gone>;

    /// Sends a command.
    fn call(&self, f: impl FnOnce(&mut M) + Send + 'static) -> Result<(), Gone> {
        self.call_boxed(Box::new(f))
    }
}
