//! Discard (RFC 863): everything received is thrown away.
//!
//! | input | effect |
//! |---|---|
//! | `Accepted` / `Opened` | [`ServiceEvent::Connected`] |
//! | `Data` | all taken, nothing sent |
//! | `Eof` | [`ServiceEvent::Eof`], `Close::Graceful` |
//! | `Datagram` | dropped; [`ServiceEvent::Datagram`] with `replied: 0` |
//! | `Closed` | [`ServiceEvent::Closed`] |

use alloc::collections::BTreeSet;
use twill_core::{Close, ConnId, Input, Machine, Now, OutQueue, Output};

use crate::error::Error;
use crate::service::ServiceEvent;

/// The discard service over any number of connections and sockets.
#[derive(Debug, Default)]
pub struct Discard {
    conns: BTreeSet<ConnId>,
    out: OutQueue<ServiceEvent>,
}

impl Discard {
    /// A discard service.
    pub fn new() -> Self {
        Discard::default()
    }
}

impl Machine for Discard {
    type Event = ServiceEvent;
    type Error = Error;

    /// Never fails.
    fn handle_input(&mut self, _now: Now, input: Input<'_>) -> Result<usize, Error> {
        match input {
            Input::Accepted { conn, peer, .. } | Input::Opened { conn, peer, .. } => {
                self.conns.insert(conn);
                self.out.event(ServiceEvent::Connected { conn, peer });
            }
            Input::Data { bytes, .. } => return Ok(bytes.len()),
            Input::Eof { conn, .. } => {
                let known = self.conns.contains(&conn);
                if known {
                    self.out.event(ServiceEvent::Eof { conn });
                    self.out.close(conn, Close::Graceful);
                }
            }
            Input::Closed { conn } => {
                let known = self.conns.remove(&conn);
                if known {
                    self.out.event(ServiceEvent::Closed { conn });
                }
            }
            Input::Datagram {
                sock, from, bytes, ..
            } => self.out.event(ServiceEvent::Datagram {
                sock,
                from,
                len: bytes.len(),
                replied: 0,
            }),
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, _now: Now) {}

    fn poll_output(&mut self) -> Output<ServiceEvent> {
        self.out.pop_or_wait(None)
    }
}
