//! The shape Daytime (RFC 867) and QOTD (RFC 865) share: on connect, one
//! message, then close; a datagram gets the same message back.
//!
//! | input | effect |
//! |---|---|
//! | `Accepted` / `Opened` | [`ServiceEvent::Connected`], the message, `Close::Graceful` |
//! | `Data` | all taken and ignored |
//! | `Datagram` | the message to the sender |
//! | `Closed` | [`ServiceEvent::Closed`] |

use alloc::collections::BTreeSet;
use bytes::{Bytes, BytesMut};
use twill_core::{Close, ConnId, Input, Machine, Now, OutQueue, Output};

use crate::error::Error;
use crate::service::ServiceEvent;

/// What a one-shot service says.
pub trait Message {
    /// The message for a peer arriving at `now`, encoded into `buf` (the
    /// machine's reusable buffer) or returned ready-made.
    fn message(&self, now: Now, buf: &mut BytesMut) -> Bytes;
}

/// A service that says one [`Message`] per connection or datagram.
#[derive(Debug, Default)]
pub struct OneShot<S> {
    pub(crate) say: S,
    conns: BTreeSet<ConnId>,
    out: OutQueue<ServiceEvent>,
}

impl<S: Message> OneShot<S> {
    /// A service saying `say`.
    pub fn saying(say: S) -> Self {
        OneShot {
            say,
            conns: BTreeSet::new(),
            out: OutQueue::new(),
        }
    }
}

/// A fresh service with the same message (for a factory of per-connection
/// machines).
impl<S: Message + Clone> Clone for OneShot<S> {
    fn clone(&self) -> Self {
        OneShot::saying(self.say.clone())
    }
}

impl<S: Message> Machine for OneShot<S> {
    type Event = ServiceEvent;
    type Error = Error;

    /// Never fails.
    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Error> {
        match input {
            Input::Accepted { conn, peer, .. } | Input::Opened { conn, peer, .. } => {
                self.conns.insert(conn);
                self.out.event(ServiceEvent::Connected { conn, peer });
                let msg = self.say.message(now, &mut self.out.buf);
                self.out.transmit(conn, msg);
                self.out.close(conn, Close::Graceful);
            }
            Input::Data { bytes, .. } => return Ok(bytes.len()),
            Input::Closed { conn } => {
                let known = self.conns.remove(&conn);
                if known {
                    self.out.event(ServiceEvent::Closed { conn });
                }
            }
            Input::Datagram {
                sock, from, bytes, ..
            } => {
                let reply = self.say.message(now, &mut self.out.buf);
                let replied = reply.len();
                self.out.push(Output::SendTo {
                    sock,
                    to: from,
                    bytes: reply,
                });
                self.out.event(ServiceEvent::Datagram {
                    sock,
                    from,
                    len: bytes.len(),
                    replied,
                });
            }
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, _now: Now) {}

    fn poll_output(&mut self) -> Output<ServiceEvent> {
        self.out.pop_or_wait(None)
    }
}
