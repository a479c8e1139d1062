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
use twill_core::queue::BLOCK;
use twill_core::{Close, ConnId, OutQueue, Output};

use crate::server::ServerEvent;

/// The encode block of a machine that serves one connection (a driver's
/// factory): room for a few heads, kept while the connection is idle, so
/// that neither an idle connection holds a large block nor each response
/// allocates a new one.
const SMALL_BLOCK: usize = 1024;

/// An [`OutQueue`] with bytes that may wait for one connection.
#[derive(Debug)]
pub(crate) struct Out {
    q: OutQueue<ServerEvent>,
    /// The connection whose bytes fill the unsplit part of `q.buf`; with
    /// `None`, that part is empty.
    pending: Option<ConnId>,
    /// Give the encode buffer's memory back once what waits is queued.
    release: bool,
    /// The least the encode buffer grows by.
    block: usize,
    /// Twice the size of the last run of waiting bytes (a pipelined
    /// batch), up to [`BLOCK`]: the next run likely needs as much, and
    /// reserving it at once spares growing a small block step by step.
    hint: usize,
}

impl Default for Out {
    fn default() -> Self {
        Out {
            q: OutQueue::default(),
            pending: None,
            release: false,
            block: BLOCK,
            hint: 0,
        }
    }
}

impl Out {
    /// Queues the bytes that wait.
    pub(crate) fn flush(&mut self) {
        if let Some(conn) = self.pending.take() {
            // Twice the last run: room estimates run above the bytes
            // written, and a run that only just fits grows mid-way.
            self.hint = (2 * self.q.transmit_buf(conn)).min(BLOCK);
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

    /// [`scratch`](Self::scratch) with room for `n` more bytes.
    pub(crate) fn scratch_for(&mut self, n: usize) -> &mut BytesMut {
        self.flush();
        self.reserve(n);
        &mut self.q.buf
    }

    /// Room for `n` more bytes, a block at a time: one allocation for
    /// many small messages (see `twill_core::queue::reserve_block`).
    fn reserve(&mut self, n: usize) {
        let buf = &mut self.q.buf;
        if buf.capacity() - buf.len() < n {
            buf.reserve(n.max(self.block).max(self.hint));
        }
    }

    /// The encode buffer for bytes of `conn` that may wait (the front
    /// response's), with room for `n` more.
    pub(crate) fn append_for(&mut self, conn: ConnId, n: usize) -> &mut BytesMut {
        if self.pending != Some(conn) {
            self.flush();
            self.pending = Some(conn);
        }
        self.reserve(n);
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

    /// The machine serves one connection, now idle: from here on the
    /// encode buffer grows by small blocks, and a large one is given back
    /// (now, or once the bytes waiting in it are queued).
    pub(crate) fn one_connection(&mut self) {
        self.block = SMALL_BLOCK;
        // A block that held a pipelined batch is kept if it is small: a
        // client that pipelines sends the next batch soon.
        if self.q.buf.capacity() > 4 * SMALL_BLOCK {
            if self.pending.is_some() {
                self.release = true;
            } else if self.q.buf.is_empty() {
                self.q.buf = BytesMut::new();
            }
        }
    }

    /// The machine serves several connections: blocks of the usual size.
    pub(crate) fn many_connections(&mut self) {
        self.block = BLOCK;
    }

    /// The next output; what waits goes once everything before it has.
    pub(crate) fn pop(&mut self) -> Option<Output<ServerEvent>> {
        if self.q.is_empty() {
            self.flush();
        }
        self.q.pop()
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
        out.one_connection();
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
