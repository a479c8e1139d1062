//! [`Conn`]: one machine over one connection, driven from the caller's
//! thread.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use bytes::{Buf, Bytes, BytesMut};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use socket2::Socket;
use twill_core::{
    Addr, ClientEndpoint, Close, ConnId, Input, Instant, Machine, Now, OpenError, Output, Payload,
};
use twill_driver::{net, Clock, SystemClock};

use crate::event_loop::connect_tcp;
use crate::socket::ends;

/// Bytes read per call.
const READ_BUF: usize = 64 * 1024;
/// Chunks per vectored write.
const MAX_IOV: usize = 64;

/// A client connection running machine `M` on the caller's thread.
///
/// Nothing happens between calls: [`Conn::next_event`] and
/// [`Conn::flush`] drive the machine (drain its outputs, write what it
/// queued, read with a timeout until its next deadline, fire its timers).
/// Application commands are calls on [`Conn::machine`]; the next
/// `next_event` or `flush` carries them out.
///
/// The socket is non-blocking underneath and every wait is a `poll` for
/// both directions, so a peer that answers while we are still sending
/// cannot deadlock the two of us. A `tls:` endpoint connects plain TCP:
/// TLS is a layer around the machine, not a driver feature.
///
/// Only this one connection exists: a machine's other `Open`s are answered
/// `OpenFailed(Unsupported)`, and `Payload::File` (which needs a host's
/// file registry) is not supported.
pub struct Conn<M: Machine> {
    machine: M,
    sock: Socket,
    id: ConnId,
    local: Addr,
    peer: Addr,
    clock: SystemClock,
    /// Output not yet written, in order.
    out: VecDeque<Bytes>,
    /// A close the machine asked for, done once `out` is written.
    close_after: Option<Close>,
    /// Input the machine did not take.
    held: BytesMut,
    /// The machine made a short take and has not said `Resume`.
    paused: bool,
    deadline: Option<Instant>,
    events: VecDeque<M::Event>,
    read_eof: bool,
    closed: bool,
    /// The machine returned `Err`: reported once its output went out.
    failed: Option<io::Error>,
    /// Sticky: a machine that failed gets no more input.
    broken: bool,
    buf: Vec<u8>,
}

impl<M: Machine> std::fmt::Debug for Conn<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id)
            .field("local", &self.local)
            .field("peer", &self.peer)
            .field("queued", &self.out.iter().map(Bytes::len).sum::<usize>())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// What one round of waiting is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Goal {
    /// An event (return as soon as one is queued).
    Event,
    /// All queued output written.
    Flush,
}

impl<M: Machine> Conn<M> {
    // ---- construction -----------------------------------------------------

    /// Connects to `endpoint` (`tcp:` with its optional timeout, `unix:`)
    /// and feeds the machine `Input::Opened`.
    pub fn connect(endpoint: &ClientEndpoint, machine: M) -> io::Result<Conn<M>> {
        let sock = match endpoint {
            ClientEndpoint::Tcp {
                host,
                port,
                timeout,
                ..
            } => connect_tcp(host, *port, *timeout)?,
            ClientEndpoint::Unix { path, .. } => Socket::from(UnixStream::connect(path)?),
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("cannot connect to {other}"),
                ))
            }
        };
        Conn::with_socket(sock, machine)
    }

    /// Runs `machine` over an already connected TCP stream.
    pub fn from_tcp(stream: TcpStream, machine: M) -> io::Result<Conn<M>> {
        Conn::with_socket(Socket::from(stream), machine)
    }

    /// Runs `machine` over an already connected Unix stream.
    pub fn from_unix(stream: UnixStream, machine: M) -> io::Result<Conn<M>> {
        Conn::with_socket(Socket::from(stream), machine)
    }

    fn with_socket(sock: Socket, machine: M) -> io::Result<Conn<M>> {
        sock.set_nonblocking(true)?;
        let (local, peer) = ends(&sock);
        let mut c = Conn {
            machine,
            sock,
            // A driver-chosen id (the lower half), as for accepted ones.
            id: ConnId(1),
            local: local.clone(),
            peer: peer.clone(),
            clock: SystemClock::new(),
            out: VecDeque::new(),
            close_after: None,
            held: BytesMut::new(),
            paused: false,
            deadline: None,
            events: VecDeque::new(),
            read_eof: false,
            closed: false,
            failed: None,
            broken: false,
            buf: vec![0; READ_BUF],
        };
        let conn = c.id;
        c.input(Input::Opened { conn, local, peer });
        c.drain();
        Ok(c)
    }

    // ---- getters ----------------------------------------------------------

    /// The machine, to call its commands (carried out by the next
    /// [`next_event`](Conn::next_event) or [`flush`](Conn::flush)).
    pub fn machine(&mut self) -> &mut M {
        &mut self.machine
    }

    /// The id the machine knows this connection by.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Our end.
    pub fn local_addr(&self) -> &Addr {
        &self.local
    }

    /// Their end.
    pub fn peer_addr(&self) -> &Addr {
        &self.peer
    }

    /// Whether the connection is gone (closed by the machine or the peer).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Gives the machine back.
    pub fn into_machine(self) -> M {
        self.machine
    }

    // ---- driving ------------------------------------------------------------

    /// Drives the connection until the machine emits an event and returns
    /// it; `None` once the connection is closed and every event was
    /// returned, or when nothing more can happen (the peer finished, the
    /// machine keeps the connection open and has no timer).
    ///
    /// A machine error (`Err` from `handle_input`) is returned once, after
    /// what the machine queued was written; the connection is then closed.
    pub fn next_event(&mut self) -> io::Result<Option<M::Event>> {
        loop {
            self.drain();
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            if let Some(e) = self.failed.take() {
                let _ = self.pump_until_flushed();
                self.close_now();
                return Err(e);
            }
            if self.closed {
                return Ok(None);
            }
            if !self.step(Goal::Event)? {
                return Ok(None);
            }
        }
    }

    /// Writes everything queued (reading meanwhile, so a peer that answers
    /// before it has read all of it cannot deadlock us; what arrives is
    /// kept for [`next_event`](Conn::next_event)).
    pub fn flush(&mut self) -> io::Result<()> {
        self.pump_until_flushed()?;
        match self.failed.take() {
            Some(e) => {
                self.close_now();
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// The events, until the connection is done.
    pub fn events(&mut self) -> Events<'_, M> {
        Events { conn: self }
    }

    // ---- inside -------------------------------------------------------------

    fn now(&self) -> Now {
        self.clock.now()
    }

    fn pump_until_flushed(&mut self) -> io::Result<()> {
        loop {
            self.drain();
            if self.closed || (self.out.is_empty() && self.close_after.is_none()) {
                return Ok(());
            }
            if !self.step(Goal::Flush)? {
                return Ok(());
            }
        }
    }

    /// Feeds one input, remembering a machine error.
    fn input(&mut self, input: Input<'_>) -> usize {
        if self.broken {
            return 0;
        }
        let now = self.now();
        match self.machine.handle_input(now, input) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "machine error; closing the connection");
                self.failed = Some(io::Error::other(e));
                self.broken = true;
                0
            }
        }
    }

    /// Polls the machine until `Wait`.
    fn drain(&mut self) {
        loop {
            match self.machine.poll_output() {
                Output::Wait { deadline } => {
                    self.deadline = deadline;
                    return;
                }
                Output::Transmit { conn, payload } if conn == self.id => match payload {
                    Payload::Bytes(b) => {
                        if self.closed || self.close_after.is_some() {
                            tracing::debug!("transmit after close dropped");
                        } else if !b.is_empty() {
                            self.out.push_back(b);
                        }
                    }
                    Payload::File { .. } => {
                        tracing::warn!("file payloads are not supported by Conn; aborting");
                        self.abort();
                    }
                },
                Output::Event(e) => self.events.push_back(e),
                Output::Resume { conn } if conn == self.id => self.paused = false,
                Output::Close { conn, how } if conn == self.id => {
                    if how == Close::Abort {
                        self.abort();
                    } else if self.close_after != Some(Close::Graceful) {
                        self.close_after = Some(how);
                    }
                }
                Output::Open { conn, how } => {
                    tracing::debug!(?how, "Conn runs one connection; open refused");
                    let error = OpenError::Unsupported;
                    self.input(Input::OpenFailed { conn, error });
                }
                other => {
                    let other = other.map_event(|_| ());
                    tracing::debug!(?other, "output for another connection dropped");
                }
            }
        }
    }

    /// Offers held input again while the machine takes it.
    fn offer_held(&mut self) {
        while !self.paused && !self.held.is_empty() && !self.closed {
            let data = self.held.split().freeze();
            self.feed(&data);
            self.drain();
        }
    }

    /// Offers bytes; a short take keeps the rest and pauses.
    fn feed(&mut self, data: &[u8]) {
        let conn = self.id;
        let taken = self
            .input(Input::Data { conn, bytes: data })
            .min(data.len());
        if taken < data.len() && !self.broken {
            let mut rest = BytesMut::from(&data[taken..]);
            rest.extend_from_slice(&self.held);
            self.held = rest;
            self.paused = true;
        }
    }

    /// One round: write what can be written, fire due timers, else wait
    /// for the socket or the deadline and handle what happened. `false`
    /// when nothing can ever happen again.
    fn step(&mut self, goal: Goal) -> io::Result<bool> {
        self.offer_held();
        self.write_some();
        self.drain();
        let ready = !self.events.is_empty() || self.failed.is_some();
        if self.closed || (goal == Goal::Event && ready) {
            return Ok(true);
        }
        if goal == Goal::Flush && self.out.is_empty() && self.close_after.is_none() {
            return Ok(true);
        }
        let now = self.now();
        if let Some(d) = self.deadline {
            if d <= now.mono {
                self.deadline = None;
                self.machine.handle_timeout(now);
                return Ok(true);
            }
        }
        let want_read = !self.read_eof && !self.paused && self.held.is_empty() && !self.broken;
        let want_write = !self.out.is_empty();
        if !want_read && !want_write && self.deadline.is_none() {
            return Ok(false);
        }
        let mut flags = PollFlags::empty();
        if want_read {
            flags |= PollFlags::POLLIN;
        }
        if want_write {
            flags |= PollFlags::POLLOUT;
        }
        let timeout = match self.deadline {
            Some(d) => {
                // Rounded up, so we never wake just before the deadline
                // and spin.
                let ms = (d - now.mono).as_nanos().div_ceil(1_000_000);
                PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        let revents = {
            let mut fds = [PollFd::new(self.sock.as_fd(), flags)];
            match poll(&mut fds, timeout) {
                Ok(_) => fds[0].revents().unwrap_or(PollFlags::empty()),
                Err(nix::errno::Errno::EINTR) => return Ok(true),
                Err(e) => return Err(e.into()),
            }
        };
        let hup = PollFlags::POLLERR | PollFlags::POLLHUP;
        if want_read && revents.intersects(PollFlags::POLLIN | hup) {
            self.read_once();
        }
        Ok(true)
    }

    fn read_once(&mut self) {
        match (&self.sock).read(&mut self.buf) {
            Ok(0) => {
                self.read_eof = true;
                let conn = self.id;
                self.input(Input::Eof { conn, clean: true });
            }
            Ok(n) => {
                let data = Bytes::copy_from_slice(&self.buf[..n]);
                self.feed(&data);
            }
            Err(e) if would_block(&e) => {}
            Err(e) => {
                tracing::debug!(error = %e, "read failed");
                self.gone();
            }
        }
    }

    /// Writes until the socket would block or everything is out, then
    /// carries out a close that waited for the flush.
    fn write_some(&mut self) {
        while !self.out.is_empty() && !self.closed {
            let r = {
                let slices: Vec<IoSlice<'_>> = self
                    .out
                    .iter()
                    .take(MAX_IOV)
                    .map(|b| IoSlice::new(b))
                    .collect();
                self.sock
                    .send_vectored_with_flags(&slices, nix::libc::MSG_NOSIGNAL)
            };
            match r {
                Ok(n) => {
                    let mut left = n;
                    while left > 0 {
                        let Some(b) = self.out.front_mut() else { break };
                        if b.len() <= left {
                            left -= b.len();
                            self.out.pop_front();
                        } else {
                            b.advance(left);
                            left = 0;
                        }
                    }
                    let conn = self.id;
                    self.input(Input::Sent { conn, bytes: n });
                    self.drain();
                }
                Err(e) if would_block(&e) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "write failed");
                    self.gone();
                    return;
                }
            }
        }
        if self.out.is_empty() && !self.closed {
            match self.close_after.take() {
                Some(Close::WriteHalf) => {
                    let _ = self.sock.shutdown(Shutdown::Write);
                }
                Some(_) => self.close_now(),
                None => {}
            }
        }
    }

    /// Closes now (after a flush, or on an error) and tells the machine.
    fn close_now(&mut self) {
        if self.closed {
            return;
        }
        let _ = self.sock.shutdown(Shutdown::Both);
        self.gone();
    }

    /// `Close::Abort`: drop queued output and reset.
    fn abort(&mut self) {
        if self.closed {
            return;
        }
        net::set_abortive(&self.sock);
        self.out.clear();
        let _ = self.sock.shutdown(Shutdown::Read);
        self.gone();
    }

    /// The connection is over; the machine hears `Closed` once.
    fn gone(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.out.clear();
        self.close_after = None;
        let conn = self.id;
        self.input(Input::Closed { conn });
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// The events of a [`Conn`] ([`Conn::events`]); ends when the connection
/// is done or after an error.
pub struct Events<'a, M: Machine> {
    conn: &'a mut Conn<M>,
}

impl<M: Machine> Iterator for Events<'_, M> {
    type Item = io::Result<M::Event>;

    fn next(&mut self) -> Option<Self::Item> {
        self.conn.next_event().transpose()
    }
}
