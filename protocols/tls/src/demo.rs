//! [`StartTlsEcho`]: the smallest line protocol with STARTTLS, to show
//! (and test, on every driver) how a protocol hands its connection to the
//! TLS layer the way SMTP, POP3, IMAP and FTP will.
//!
//! Each `\n`-terminated line comes back as `PLAIN <line>` before TLS and
//! `SECURE <line>` after; the line `STARTTLS` is answered `OK` and then the
//! machine emits `Open { how: StartTls }`. It takes bytes only up to the end
//! of that command (a short take), so anything the peer pipelined after it
//! is still the driver's and the layer refuses the session (the injection
//! defence). Serve it as `Tls::new(StartTlsEcho::new(), &ctx)`, one machine
//! per connection (factory mode).

use bytes::{Bytes, BytesMut};
use twill_core::{Close, ConnId, Input, Machine, Now, Open, OutQueue, Output, Role};

/// Longest line, `\n` included; a longer one is answered `ERR line too
/// long` and the connection closes.
pub const MAX_LINE: usize = 1024;

/// What the application hears.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartTlsEvent {
    /// TLS is up on the connection.
    Secured(ConnId),
    /// The handshake never started or failed (the layer says why).
    Failed(ConnId, String),
}

/// The line protocol; see the module docs.
#[derive(Debug, Default)]
pub struct StartTlsEcho {
    out: OutQueue<StartTlsEvent>,
    line: BytesMut,
    secure: bool,
    /// Between `StartTls` and `Secured`/`OpenFailed`: takes nothing.
    upgrading: bool,
    closed: bool,
}

impl StartTlsEcho {
    /// A machine for one connection.
    pub fn new() -> Self {
        Self::default()
    }

    fn reply(&mut self, conn: ConnId, line: &[u8]) {
        let tag: &[u8] = if self.secure { b"SECURE " } else { b"PLAIN " };
        let mut b = BytesMut::with_capacity(tag.len() + line.len() + 1);
        b.extend_from_slice(tag);
        b.extend_from_slice(line);
        b.extend_from_slice(b"\n");
        self.out.transmit(conn, b.freeze());
    }

    fn data(&mut self, conn: ConnId, bytes: &[u8]) -> usize {
        if self.upgrading || self.closed {
            return 0;
        }
        let mut start = 0;
        while let Some(i) = memchr::memchr(b'\n', &bytes[start..]) {
            let end = start + i;
            self.line.extend_from_slice(&bytes[start..end]);
            start = end + 1;
            if self.too_long(conn) {
                return bytes.len();
            }
            let line = self.line.split().freeze();
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            if !self.secure && line == b"STARTTLS" {
                self.out.transmit(conn, Bytes::from_static(b"OK\n"));
                self.out.push(Output::Open {
                    conn,
                    how: Open::StartTls {
                        role: Role::Server,
                        server_name: None,
                        resume_from: None,
                    },
                });
                self.upgrading = true;
                return start;
            }
            self.reply(conn, line);
        }
        self.line.extend_from_slice(&bytes[start..]);
        self.too_long(conn);
        bytes.len()
    }

    fn too_long(&mut self, conn: ConnId) -> bool {
        if self.line.len() < MAX_LINE {
            return false;
        }
        self.out
            .transmit(conn, Bytes::from_static(b"ERR line too long\n"));
        self.out.close(conn, Close::Graceful);
        self.closed = true;
        true
    }
}

impl Machine for StartTlsEcho {
    type Event = StartTlsEvent;
    type Error = std::convert::Infallible;

    fn handle_input(&mut self, _now: Now, input: Input<'_>) -> Result<usize, Self::Error> {
        Ok(match input {
            Input::Data { conn, bytes } => self.data(conn, bytes),
            Input::Secured { conn, .. } => {
                // Nothing learned in the clear survives into the session.
                self.line.clear();
                self.secure = true;
                self.upgrading = false;
                self.out.event(StartTlsEvent::Secured(conn));
                0
            }
            Input::OpenFailed { conn, error } => {
                self.upgrading = false;
                self.closed = true;
                self.out
                    .event(StartTlsEvent::Failed(conn, error.to_string()));
                self.out.close(conn, Close::Abort);
                0
            }
            Input::Eof { conn, .. } => {
                self.out.close(conn, Close::Graceful);
                0
            }
            _ => 0,
        })
    }

    fn handle_timeout(&mut self, _now: Now) {}

    fn poll_output(&mut self) -> Output<StartTlsEvent> {
        self.out.pop_or_wait(None)
    }
}
