//! Daytime (RFC 867): on connect, the current date and time as one line
//! of ASCII, then close; a datagram gets the same line back.
//!
//! | input | effect |
//! |---|---|
//! | `Accepted` / `Opened` | [`ServiceEvent::Connected`], the date line, `Close::Graceful` |
//! | `Data` | all taken and ignored |
//! | `Datagram` | the date line to the sender |
//! | `Closed` | [`ServiceEvent::Closed`] |
//!
//! The RFC fixes no syntax. The time is the wall clock of the input's
//! [`Now`] (the machine reads no clock), formatted as an HTTP-date
//! (`Thu, 01 Jan 2026 00:00:00 GMT`, RFC 9110 §5.6.7, the RFC 1123 form)
//! or RFC 3339 (`2026-01-01T00:00:00Z`), followed by CRLF.

use alloc::collections::BTreeSet;
use core::fmt::Write;
use twill_core::{Close, ConnId, Input, Machine, Now, OutQueue, Output, UnixTime};

use crate::error::Error;
use crate::service::ServiceEvent;

/// How the date is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DaytimeFormat {
    /// `Thu, 01 Jan 2026 00:00:00 GMT`.
    #[default]
    HttpDate,
    /// `2026-01-01T00:00:00Z`.
    Rfc3339,
}

/// The daytime service over any number of connections and sockets.
#[derive(Debug, Default)]
pub struct Daytime {
    format: DaytimeFormat,
    conns: BTreeSet<ConnId>,
    out: OutQueue<ServiceEvent>,
}

impl Daytime {
    /// Daytime with HTTP-dates.
    pub fn new() -> Self {
        Daytime::default()
    }

    /// How the date is written.
    pub fn with_format(mut self, format: DaytimeFormat) -> Self {
        self.format = format;
        self
    }

    /// Writes the line for `wall` into the output buffer.
    fn write_line(&mut self, wall: UnixTime) {
        let civil = wall.to_civil();
        // Writing into a BytesMut cannot fail.
        let _ = match self.format {
            DaytimeFormat::HttpDate => write!(self.out.buf, "{}\r\n", civil.http_date()),
            DaytimeFormat::Rfc3339 => write!(self.out.buf, "{}\r\n", civil.rfc3339()),
        };
    }
}

impl Machine for Daytime {
    type Event = ServiceEvent;
    type Error = Error;

    /// Never fails.
    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Error> {
        match input {
            Input::Accepted { conn, peer, .. } | Input::Opened { conn, peer, .. } => {
                self.conns.insert(conn);
                self.out.event(ServiceEvent::Connected { conn, peer });
                self.write_line(now.wall);
                self.out.transmit_buf(conn);
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
                self.write_line(now.wall);
                let reply = self.out.buf.split().freeze();
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
