//! The output side and read flow control of a machine that serves one
//! connection (an SMTP or POP3 session, a command channel): what it queues,
//! how much of it the driver has not flushed yet, and whether reading of
//! the connection is paused.
//!
//! The rules it keeps, so each machine does not write them again:
//! - output goes out through [`Link::send`], which counts it against the
//!   [`OutputBudget`];
//! - a machine that stops taking input (a short take) sets
//!   [`paused`](Link::paused) and gets the driver going again with exactly one
//!   `Resume` once the budget has room ([`Link::resume`], [`Link::sent`]);
//! - on close, a paused connection is resumed so the driver offers (and the
//!   machine discards) what it holds, instead of waiting forever.

use crate::id::ConnId;
use crate::io::{Close, Output};
use crate::limits::OutputBudget;
use crate::queue::OutQueue;

/// One connection's output queue, output budget and read pause.
#[derive(Debug)]
pub struct Link<E> {
    /// Outputs and the reusable encode buffer.
    pub out: OutQueue<E>,
    /// Unflushed output.
    pub budget: OutputBudget,
    /// Reading is paused: the last input was taken short.
    pub paused: bool,
    /// The peer sent EOF while the machine could not yet act on it.
    pub peer_eof: bool,
}

impl<E> Link<E> {
    /// An idle link with the given budget.
    pub fn new(budget: OutputBudget) -> Self {
        Link {
            out: OutQueue::new(),
            budget,
            paused: false,
            peer_eof: false,
        }
    }

    /// Queues everything encoded into `out.buf` for `conn` and counts it.
    pub fn send(&mut self, conn: ConnId) {
        let n = self.out.transmit_buf(conn);
        self.budget.queued(n);
    }

    /// Un-pauses reading if it is paused and the output is under the high
    /// mark; returns whether it did.
    pub fn resume(&mut self, conn: ConnId) -> bool {
        if self.paused && !self.budget.is_full() {
            self.unpause(conn);
            return true;
        }
        false
    }

    /// Un-pauses reading now, whatever the budget says (after a TLS
    /// handshake, or on close).
    pub fn unpause(&mut self, conn: ConnId) {
        if self.paused {
            self.paused = false;
            self.out.push(Output::Resume { conn });
        }
    }

    /// The driver flushed `bytes`; when `reading` (the machine is in a
    /// state that takes input) and the output drained to the low mark,
    /// reading is un-paused.
    pub fn sent(&mut self, conn: ConnId, bytes: usize, reading: bool) {
        self.budget.sent(bytes);
        if reading && self.budget.has_room() {
            self.unpause(conn);
        }
    }

    /// Queues a close; a paused connection is resumed so the driver offers
    /// what it holds (which the machine discards) instead of keeping it.
    pub fn close(&mut self, conn: ConnId, how: Close) {
        self.out.close(conn, how);
        self.unpause(conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::Payload;
    use alloc::vec::Vec;

    fn drain(l: &mut Link<()>) -> Vec<Output<()>> {
        let mut v = Vec::new();
        loop {
            match l.out.pop_or_wait(None) {
                Output::Wait { .. } => return v,
                o => v.push(o),
            }
        }
    }

    #[test]
    fn pause_resume_close() {
        let c = ConnId(1);
        let mut l = Link::<()>::new(OutputBudget::new(4, 2));
        l.out.buf.extend_from_slice(b"hello");
        l.send(c);
        assert_eq!(l.budget.pending(), 5);
        assert!(
            matches!(&drain(&mut l)[..], [Output::Transmit { payload: Payload::Bytes(b), .. }] if &b[..] == b"hello")
        );
        l.paused = true;
        assert!(!l.resume(c), "over the high mark");
        l.sent(c, 2, true);
        assert!(l.paused, "3 unflushed is above the low mark");
        l.sent(c, 1, false);
        assert!(l.paused, "not reading");
        l.sent(c, 0, true);
        assert!(!l.paused);
        assert!(matches!(&drain(&mut l)[..], [Output::Resume { conn }] if *conn == c));
        l.paused = true;
        l.close(c, Close::Graceful);
        assert!(matches!(
            &drain(&mut l)[..],
            [Output::Close { .. }, Output::Resume { .. }]
        ));
    }
}
