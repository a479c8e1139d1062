//! The event type the small RFC services share.

use core::net::SocketAddr;
use twill_core::{Addr, ConnId, SockId};

/// What echo, discard, chargen, daytime and qotd tell the application.
/// They need no answer: the events are for logging and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceEvent {
    /// A TCP connection was accepted (or opened).
    Connected {
        /// The connection.
        conn: ConnId,
        /// Its far end.
        peer: Addr,
    },
    /// The peer finished sending.
    Eof {
        /// The connection.
        conn: ConnId,
    },
    /// Reading `conn` is paused: its peer does not read what the service
    /// sends, and the service's unflushed output passed the high-water
    /// mark (echo).
    Paused {
        /// The connection.
        conn: ConnId,
    },
    /// Reading `conn` resumed: its output drained to the low-water mark.
    Resumed {
        /// The connection.
        conn: ConnId,
    },
    /// A datagram arrived, and was answered if the service answers
    /// datagrams (`replied` bytes; 0 for discard).
    Datagram {
        /// The socket.
        sock: SockId,
        /// The sender (and the reply's destination).
        from: SocketAddr,
        /// Bytes received.
        len: usize,
        /// Bytes sent back.
        replied: usize,
    },
    /// The connection is gone.
    Closed {
        /// The connection.
        conn: ConnId,
    },
}
