//! A FIFO of outputs, the usual inside of a machine's `poll_output`.

use alloc::collections::VecDeque;
use bytes::{Bytes, BytesMut};

use crate::id::ConnId;
use crate::io::{Close, Output, Payload};
use crate::time::Instant;

/// The smallest allocation [`reserve_block`] makes.
pub const BLOCK: usize = 8 * 1024;

/// Makes room in `buf` for `n` more bytes, at least [`BLOCK`] at a time.
///
/// A `BytesMut` whose spare capacity ran out after a `split` (while the
/// split-off `Bytes` are still alive) reallocates only what the next write
/// needs, and the next `split` allocates a shared header again: two
/// allocations per small message. Reserving a block at a time makes it one
/// per block. The price: a retained `Bytes` keeps its whole block alive.
pub fn reserve_block(buf: &mut BytesMut, n: usize) {
    if buf.capacity() - buf.len() < n {
        buf.reserve(n.max(BLOCK));
    }
}

/// Outputs waiting for `poll_output`, plus the one reusable encode buffer.
///
/// Machines encode replies into [`buf`](Self::buf) and call
/// [`transmit_buf`](Self::transmit_buf), which emits the encoded bytes as
/// one `Bytes` without copying (the `split().freeze()` idiom).
#[derive(Debug)]
pub struct OutQueue<E> {
    items: VecDeque<Output<E>>,
    /// Encode buffer; reused so steady state allocates nothing per message.
    pub buf: BytesMut,
}

impl<E> Default for OutQueue<E> {
    fn default() -> Self {
        OutQueue {
            items: VecDeque::new(),
            buf: BytesMut::new(),
        }
    }
}

impl<E> OutQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues any output.
    pub fn push(&mut self, out: Output<E>) {
        self.items.push_back(out);
    }

    /// Queues an event for the application.
    pub fn event(&mut self, e: E) {
        self.items.push_back(Output::Event(e));
    }

    /// Makes room in [`buf`](Self::buf) for `n` more bytes, a block at a
    /// time (see [`reserve_block`]). Call it before encoding a message.
    pub fn reserve(&mut self, n: usize) {
        reserve_block(&mut self.buf, n);
    }

    /// Queues bytes for `conn`.
    pub fn transmit(&mut self, conn: ConnId, bytes: Bytes) {
        if !bytes.is_empty() {
            self.items.push_back(Output::Transmit {
                conn,
                payload: Payload::Bytes(bytes),
            });
        }
    }

    /// Queues everything encoded into `buf` since the last call, for
    /// `conn`; returns how many bytes that was.
    pub fn transmit_buf(&mut self, conn: ConnId) -> usize {
        let n = self.buf.len();
        if n > 0 {
            let bytes = self.buf.split().freeze();
            self.transmit(conn, bytes);
        }
        n
    }

    /// Queues a close.
    pub fn close(&mut self, conn: ConnId, how: Close) {
        self.items.push_back(Output::Close { conn, how });
    }

    /// The next output, if any.
    pub fn pop(&mut self) -> Option<Output<E>> {
        self.items.pop_front()
    }

    /// The next output, or `Wait { deadline }` when empty.
    pub fn pop_or_wait(&mut self, deadline: Option<Instant>) -> Output<E> {
        self.items.pop_front().unwrap_or(Output::Wait { deadline })
    }

    /// How many outputs wait.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}
