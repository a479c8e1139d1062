//! The [`Machine`] trait: the one contract every protocol implements and
//! every driver runs.

use crate::id::ConnId;
use crate::io::{Input, Output};
use crate::time::{Instant, Now};

/// A sans-IO protocol state machine.
///
/// # The drain rule
/// After any mutation — [`handle_input`](Machine::handle_input),
/// [`handle_timeout`](Machine::handle_timeout) or an application command
/// method — the driver calls [`poll_output`](Machine::poll_output) until it
/// returns [`Output::Wait`]. There is no other ordering rule.
///
/// # Errors
/// A peer's protocol violation is never `Err`: the machine queues the
/// protocol's error reply, an event and a `Close` for that connection alone.
/// `Err` means the application misused the API; it is sticky, and the driver
/// still drains (so queued replies go out) before closing the machine's
/// connections.
pub trait Machine {
    /// What the machine tells the application.
    type Event;
    /// Misuse of the API by the application (never the peer's fault).
    type Error: core::error::Error + Send + Sync + 'static;

    /// Feeds one input. For `Data` returns how many bytes were taken: a short
    /// take pauses reading of that connection until `Output::Resume`. Other
    /// inputs return 0 (datagrams are taken whole or dropped).
    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Self::Error>;

    /// The deadline from the last `Wait` has passed. Early calls are no-ops.
    fn handle_timeout(&mut self, now: Now);

    /// The next output; `Wait` once drained.
    fn poll_output(&mut self) -> Output<Self::Event>;

    /// Whether the driver is to report a flush of `conn`'s output now,
    /// with [`Input::Sent`]. Asked after each flush; the default is yes.
    ///
    /// A machine for which the report would change nothing — `conn`'s
    /// unflushed output is well within its limits, nothing waits for room,
    /// no timer hangs on the flush — may say no, and spare itself an input
    /// and a drain per write (per request of a keep-alive HTTP client). The
    /// driver then adds the bytes to the next report it makes for `conn`,
    /// so none is lost: the machine's count of unflushed output is only too
    /// high, by at most what it declined. Saying yes once that count nears
    /// a limit keeps the count exact where it matters: the output that
    /// takes it there is flushed later, and that flush asks again.
    fn wants_sent(&self, conn: ConnId) -> bool {
        let _ = conn;
        true
    }
}

impl<M: Machine + ?Sized> Machine for alloc::boxed::Box<M> {
    type Event = M::Event;
    type Error = M::Error;

    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Self::Error> {
        (**self).handle_input(now, input)
    }

    fn handle_timeout(&mut self, now: Now) {
        (**self).handle_timeout(now)
    }

    fn poll_output(&mut self) -> Output<Self::Event> {
        (**self).poll_output()
    }

    fn wants_sent(&self, conn: ConnId) -> bool {
        (**self).wants_sent(conn)
    }
}

/// The earlier of two optional deadlines (`None` = no deadline).
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
