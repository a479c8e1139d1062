//! The server's output queue, which lets the responses of a pipelined
//! batch leave as one `Transmit`.
//!
//! Response bytes for the front response of one connection may wait at the
//! end of the encode buffer (`pending`) instead of being split off at once:
//! the next front response of the same connection is encoded right after
//! them, and sixteen pipelined answers become one payload (one output, one
//! chunk in the driver's queue, one iovec). Anything else queued first
//! sends what waits, so outputs keep their order; only the events that say
//! nothing about the connection's bytes (a new request, a response done)
//! may be queued past them.

use bytes::BytesMut;
use twill_core::queue::reserve_block;
use twill_core::{Close, ConnId, OutQueue, Output};

use crate::server::ServerEvent;

/// An [`OutQueue`] with bytes that may wait for one connection.
#[derive(Debug, Default)]
pub(crate) struct Out {
    q: OutQueue<ServerEvent>,
    /// The connection whose bytes fill the unsplit part of `q.buf`; with
    /// `None`, that part is empty.
    pending: Option<ConnId>,
    /// Give the encode buffer's memory back once what waits is queued.
    release: bool,
}

impl Out {
    /// Queues the bytes that wait.
    pub(crate) fn flush(&mut self) {
        if let Some(conn) = self.pending.take() {
            self.q.transmit_buf(conn);
        }
        if self.release {
            self.release = false;
            self.q.buf = BytesMut::new();
        }
    }

    /// Queues any output, after what waits.
    pub(crate) fn push(&mut self, out: Output<ServerEvent>) {
        self.flush();
        self.q.push(out);
    }

    /// Queues an event, after what waits.
    pub(crate) fn event(&mut self, e: ServerEvent) {
        self.flush();
        self.q.event(e);
    }

    /// Queues an event that says nothing about bytes on the wire (a new
    /// request, a response done), letting waiting bytes stay.
    pub(crate) fn event_passing(&mut self, e: ServerEvent) {
        self.q.event(e);
    }

    /// Queues a close, after what waits.
    pub(crate) fn close(&mut self, conn: ConnId, how: Close) {
        self.flush();
        self.q.close(conn, how);
    }

    /// The encode buffer for bytes the caller splits off at once.
    pub(crate) fn scratch(&mut self) -> &mut BytesMut {
        self.flush();
        &mut self.q.buf
    }

    /// The encode buffer for bytes of `conn` that may wait (the front
    /// response's), with room for `n` more.
    pub(crate) fn append_for(&mut self, conn: ConnId, n: usize) -> &mut BytesMut {
        if self.pending != Some(conn) {
            self.flush();
            self.pending = Some(conn);
        }
        reserve_block(&mut self.q.buf, n);
        &mut self.q.buf
    }

    /// Queues what was encoded in [`scratch`](Self::scratch) for `conn`;
    /// returns how many bytes.
    pub(crate) fn transmit_buf(&mut self, conn: ConnId) -> usize {
        self.flush();
        self.q.transmit_buf(conn)
    }

    /// Drops what waits for a connection that is gone.
    pub(crate) fn forget(&mut self, conn: ConnId) {
        if self.pending == Some(conn) {
            self.pending = None;
            self.q.buf.clear();
        }
    }

    /// Gives back the encode buffer's memory, now or (if bytes wait in
    /// it) once they are queued.
    pub(crate) fn release_buf(&mut self) {
        if self.pending.is_some() {
            self.release = true;
        } else if self.q.buf.is_empty() {
            self.q.buf = BytesMut::new();
        }
    }

    /// The next output; what waits goes once everything before it has.
    pub(crate) fn pop(&mut self) -> Option<Output<ServerEvent>> {
        if self.q.is_empty() {
            self.flush();
        }
        match self.q.pop_or_wait(None) {
            Output::Wait { .. } => None,
            o => Some(o),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    /// Bytes of one connection wait and leave as one payload; another
    /// connection's bytes or any other output sends them first; a release
    /// asked for while bytes wait happens once they are queued.
    #[test]
    fn waiting_bytes_keep_their_order_and_release_after() {
        let (a, b) = (ConnId(1), ConnId(2));
        let mut out = Out::default();
        out.append_for(a, 4).put_slice(b"a1");
        out.append_for(a, 4).put_slice(b"a2");
        out.event_passing(ServerEvent::ResponseDone {
            id: crate::RequestId::new(a, 0),
        });
        out.append_for(b, 4).put_slice(b"b1");
        out.release_buf();
        assert!(out.q.buf.capacity() > 0, "released while bytes wait");
        out.close(b, Close::Graceful);
        assert_eq!(out.q.buf.capacity(), 0, "not released once queued");
        let mut seen = Vec::new();
        while let Some(o) = out.pop() {
            seen.push(match o {
                Output::Transmit { conn, payload } => format!("{conn:?} {payload:?}"),
                Output::Event(_) => "event".into(),
                Output::Close { conn, .. } => format!("close {conn:?}"),
                _ => "other".into(),
            });
        }
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(seen[0], "event");
        assert!(
            seen[1].starts_with("ConnId(1)") && seen[1].contains("a1a2"),
            "{seen:?}"
        );
        assert!(
            seen[2].starts_with("ConnId(2)") && seen[2].contains("b1"),
            "{seen:?}"
        );
        assert_eq!(seen[3], "close ConnId(2)");
    }
}
