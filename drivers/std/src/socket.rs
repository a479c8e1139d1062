//! The threads that move bytes for one socket: a reader and a writer per
//! stream, a receiver per datagram socket, an acceptor per listener. They
//! never touch the engine; they report to its machine thread through its
//! channel ([`Ev`]) and take orders through small shared states.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read};
use std::net::{Shutdown, SocketAddr, UdpSocket};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Buf;
use socket2::{SockAddr, Socket};
use twill_core::{Addr, Close};
use twill_driver::{net, Chunk, Key};

use crate::event_loop::Ev;

/// Bytes read per `read` call (and held per connection while a read
/// blocks).
pub(crate) const READ_BUF: usize = 32 * 1024;
/// Largest datagram.
const DGRAM_BUF: usize = 65_536;
/// Datagrams received but not yet handled by the machine thread; more are
/// dropped, as a full socket buffer would.
const DGRAM_QUEUE: usize = 256;
/// Chunks per vectored write (well under `IOV_MAX`).
const MAX_IOV: usize = 64;
/// How often a datagram receiver looks at its stop flag.
const UDP_POLL: Duration = Duration::from_millis(250);
/// Small stacks: these threads only shuttle bytes.
const IO_STACK: usize = 128 * 1024;

/// Spawns a named I/O thread with a small stack.
pub(crate) fn spawn_io(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(IO_STACK)
        .spawn(f)
}

/// A lock that shrugs off poisoning: a panicking thread must not take the
/// server down with it, and the states guarded here stay consistent.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The address of a socket as machines see it.
pub(crate) fn addr_of(a: &SockAddr) -> Addr {
    if let Some(ip) = a.as_socket() {
        return Addr::Ip(ip);
    }
    if a.is_unix() {
        return Addr::Unix(a.as_pathname().map(|p| p.to_string_lossy().into_owned()));
    }
    Addr::Unknown
}

/// Both ends of a connected socket.
pub(crate) fn ends(s: &Socket) -> (Addr, Addr) {
    let local = s.local_addr().map_or(Addr::Unknown, |a| addr_of(&a));
    let peer = s.peer_addr().map_or(Addr::Unknown, |a| addr_of(&a));
    (local, peer)
}

/// Whether this error means "try again later" rather than a broken socket.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

// ---- streams ----------------------------------------------------------------

/// What the machine thread tells a stream's reader.
struct Gate {
    /// The engine wants this socket read.
    on: bool,
    /// A chunk was handed over and not yet handled: the reader waits, so at
    /// most one buffer per connection is ever in flight.
    inflight: bool,
    /// The socket is gone; the reader exits.
    closed: bool,
    /// The buffer handed back for reuse.
    spare: Option<Vec<u8>>,
}

/// One stream socket, shared by its reader, writer and machine thread.
pub(crate) struct Stream {
    pub(crate) sock: Socket,
    gate: Mutex<Gate>,
    cv: Condvar,
    /// The writer is inside a write call (an abort must wake it).
    writing: AtomicBool,
    aborted: AtomicBool,
}

/// An order for a stream's writer, in stream order.
pub(crate) enum WriteCmd {
    Chunk(Chunk),
    Shutdown(Close),
}

/// The machine thread's side of a stream.
pub(crate) struct StreamHandle {
    pub(crate) shared: Arc<Stream>,
    pub(crate) writer: Sender<WriteCmd>,
    /// The peer's end arrived while the engine was not reading (a read
    /// was already under way): it is reported once the engine reads
    /// again, after the input it still holds.
    pub(crate) eof_pending: bool,
}

impl StreamHandle {
    /// Starts the reader and writer threads of `sock`, reporting as `key`.
    pub(crate) fn start<M: 'static, D: Send + 'static>(
        key: Key,
        sock: Socket,
        reading: bool,
        tx: &Sender<Ev<M, D>>,
    ) -> io::Result<StreamHandle> {
        sock.set_nonblocking(false)?;
        let shared = Arc::new(Stream {
            sock,
            gate: Mutex::new(Gate {
                on: reading,
                inflight: false,
                closed: false,
                spare: None,
            }),
            cv: Condvar::new(),
            writing: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
        });
        let (wtx, wrx) = std::sync::mpsc::channel();
        {
            let (shared, tx) = (shared.clone(), tx.clone());
            spawn_io("twill-write", move || writer(key, &shared, wrx, &tx))?;
        }
        {
            let (s, tx) = (shared.clone(), tx.clone());
            if let Err(e) = spawn_io("twill-read", move || reader(key, &s, &tx)) {
                // The writer exits once its channel is dropped with us.
                shared.close_gate();
                return Err(e);
            }
        }
        Ok(StreamHandle {
            shared,
            writer: wtx,
            eof_pending: false,
        })
    }

    /// Starts or stops reading (backpressure).
    pub(crate) fn set_reading(&self, on: bool) {
        let mut g = lock(&self.shared.gate);
        g.on = on;
        drop(g);
        self.shared.cv.notify_all();
    }

    /// The machine thread handled a chunk: hand the buffer back and let
    /// the reader go on if the engine still wants input.
    pub(crate) fn handled(&self, buf: Vec<u8>, reading: bool) {
        let mut g = lock(&self.shared.gate);
        g.inflight = false;
        g.on = reading;
        g.spare = Some(buf);
        drop(g);
        self.shared.cv.notify_all();
    }

    /// Queues a chunk or a close behind what is queued.
    pub(crate) fn send(&self, cmd: WriteCmd) {
        // A writer that is gone already reported why.
        let _ = self.writer.send(cmd);
    }

    /// Closes now: queued output is dropped and TCP peers get a reset.
    pub(crate) fn abort(&self) {
        self.shared.aborted.store(true, Ordering::SeqCst);
        net::set_abortive(&self.shared.sock);
        self.shared.close_gate();
        // Wakes a blocked read without sending anything; the reset goes
        // out when the last thread lets go of the socket.
        let _ = self.shared.sock.shutdown(Shutdown::Read);
        if self.shared.writing.load(Ordering::SeqCst) {
            // The peer is not reading and the writer is stuck in `send`.
            let _ = self.shared.sock.shutdown(Shutdown::Write);
        }
    }

    /// The writer finished a graceful close: stop the reader too.
    pub(crate) fn finish(&self) {
        self.shared.close_gate();
        let _ = self.shared.sock.shutdown(Shutdown::Both);
    }
}

impl Stream {
    fn close_gate(&self) {
        lock(&self.gate).closed = true;
        self.cv.notify_all();
    }

    fn is_closed(&self) -> bool {
        lock(&self.gate).closed
    }
}

/// Blocking reads, one buffer in flight, paused while the engine says so.
fn reader<M, D>(key: Key, s: &Stream, tx: &Sender<Ev<M, D>>) {
    loop {
        let mut buf = {
            let mut g = lock(&s.gate);
            while !g.closed && (!g.on || g.inflight) {
                g = s.cv.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            if g.closed {
                return;
            }
            g.inflight = true;
            g.spare.take().unwrap_or_else(|| vec![0; READ_BUF])
        };
        match (&s.sock).read(&mut buf) {
            Ok(0) => {
                if !s.is_closed() {
                    let _ = tx.send(Ev::Eof(key));
                }
                return;
            }
            Ok(len) => {
                if tx.send(Ev::Data { key, buf, len }).is_err() {
                    return;
                }
            }
            Err(e) if transient(&e) => {
                let mut g = lock(&s.gate);
                g.inflight = false;
                g.spare = Some(buf);
            }
            Err(e) => {
                if !s.is_closed() {
                    tracing::debug!(key, error = %e, "read failed");
                    let _ = tx.send(Ev::Gone(key));
                }
                return;
            }
        }
    }
}

/// Writes queued chunks in order (vectored across the queued `Bytes`,
/// `sendfile` for file ranges), reports progress, carries out closes.
fn writer<M, D>(key: Key, s: &Stream, rx: Receiver<WriteCmd>, tx: &Sender<Ev<M, D>>) {
    let mut queue: VecDeque<WriteCmd> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match rx.recv() {
                Ok(c) => queue.push_back(c),
                Err(_) => return,
            }
        }
        while let Ok(c) = rx.try_recv() {
            queue.push_back(c);
        }
        if s.aborted.load(Ordering::SeqCst) {
            return;
        }
        let step = match queue.front_mut() {
            Some(WriteCmd::Shutdown(how)) => {
                let how = *how;
                queue.pop_front();
                if how == Close::WriteHalf {
                    let _ = s.sock.shutdown(Shutdown::Write);
                    continue;
                }
                // Graceful: everything before it is flushed.
                let _ = s.sock.shutdown(Shutdown::Write);
                let _ = tx.send(Ev::Closed(key));
                return;
            }
            Some(WriteCmd::Chunk(Chunk::File { .. })) => write_file(s, &mut queue),
            Some(WriteCmd::Chunk(Chunk::Bytes(_))) => write_bytes(s, &mut queue),
            None => continue,
        };
        match step {
            Ok(0) => {}
            Ok(n) => {
                if tx.send(Ev::Sent(key, n)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if !s.aborted.load(Ordering::SeqCst) {
                    tracing::debug!(key, error = %e, "write failed");
                    let _ = tx.send(Ev::Gone(key));
                }
                return;
            }
        }
    }
}

/// Runs one write call, marked so that an abort can wake it.
fn syscall<T>(s: &Stream, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    s.writing.store(true, Ordering::SeqCst);
    let r = if s.aborted.load(Ordering::SeqCst) {
        Err(io::Error::from(io::ErrorKind::ConnectionAborted))
    } else {
        f()
    };
    s.writing.store(false, Ordering::SeqCst);
    r
}

/// One vectored write of the leading `Bytes` chunks.
fn write_bytes(s: &Stream, queue: &mut VecDeque<WriteCmd>) -> io::Result<usize> {
    let n = {
        let slices: Vec<IoSlice<'_>> = queue
            .iter()
            .take(MAX_IOV)
            .map_while(|c| match c {
                WriteCmd::Chunk(Chunk::Bytes(b)) => Some(IoSlice::new(b)),
                _ => None,
            })
            .collect();
        syscall(s, || {
            s.sock
                .send_vectored_with_flags(&slices, nix::libc::MSG_NOSIGNAL)
        })?
    };
    let mut left = n;
    while left > 0 {
        let Some(WriteCmd::Chunk(Chunk::Bytes(b))) = queue.front_mut() else {
            break;
        };
        if b.len() <= left {
            left -= b.len();
            queue.pop_front();
        } else {
            b.advance(left);
            left = 0;
        }
    }
    Ok(n)
}

/// A piece of the leading file range: `sendfile`, or `pread` + `send`
/// where the kernel cannot.
fn write_file(s: &Stream, queue: &mut VecDeque<WriteCmd>) -> io::Result<usize> {
    let Some(WriteCmd::Chunk(Chunk::File { file, offset, len })) = queue.front_mut() else {
        return Ok(0);
    };
    if *len == 0 {
        queue.pop_front();
        return Ok(0);
    }
    let n = match syscall(s, || net::sendfile(&s.sock, file, *offset, *len)) {
        Ok(n) => n,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(nix::libc::EINVAL | nix::libc::ENOSYS)
            ) =>
        {
            let mut buf = vec![0; (*len).min(READ_BUF as u64) as usize];
            let got = file.read_at(&mut buf, *offset)?;
            if got == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than the range sent",
                ));
            }
            let mut done = 0;
            while done < got {
                done += syscall(s, || {
                    s.sock
                        .send_with_flags(&buf[done..got], nix::libc::MSG_NOSIGNAL)
                })?;
            }
            got
        }
        Err(e) => return Err(e),
    };
    *offset += n as u64;
    *len -= n as u64;
    if *len == 0 {
        queue.pop_front();
    }
    Ok(n)
}

// ---- datagram sockets ---------------------------------------------------------

/// A datagram socket, shared by its receiver and machine thread.
pub(crate) struct Udp {
    pub(crate) sock: UdpSocket,
    closed: AtomicBool,
    /// Datagrams handed over and not yet handled.
    pub(crate) queued: AtomicUsize,
}

impl Udp {
    /// Starts the receiver of `sock`, reporting as `key`.
    pub(crate) fn start<M: 'static, D: Send + 'static>(
        key: Key,
        sock: UdpSocket,
        tx: &Sender<Ev<M, D>>,
    ) -> io::Result<Arc<Udp>> {
        sock.set_nonblocking(false)?;
        // The receiver looks at `closed` this often, in case the wake-up
        // below does not reach it.
        sock.set_read_timeout(Some(UDP_POLL))?;
        let u = Arc::new(Udp {
            sock,
            closed: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
        });
        let (u2, tx) = (u.clone(), tx.clone());
        spawn_io("twill-udp", move || receiver(key, &u2, &tx))?;
        Ok(u)
    }

    /// Stops the receiver; the socket closes when it lets go.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        // Linux wakes a blocked receive on an unconnected UDP socket too.
        let _ = socket2::SockRef::from(&self.sock).shutdown(Shutdown::Read);
    }

    /// Sends one datagram (a full buffer drops it, as UDP may).
    pub(crate) fn send_to(&self, bytes: &[u8], to: SocketAddr) {
        if let Err(e) = self.sock.send_to(bytes, to) {
            tracing::debug!(%to, error = %e, "datagram not sent");
        }
    }
}

fn receiver<M, D>(key: Key, u: &Udp, tx: &Sender<Ev<M, D>>) {
    let local = match u.sock.local_addr() {
        Ok(a) => a.ip(),
        Err(_) => return,
    };
    let mut buf = vec![0; DGRAM_BUF];
    while !u.closed.load(Ordering::SeqCst) {
        match net::recv_datagram(&u.sock, &mut buf, local) {
            Ok(meta) => {
                if u.closed.load(Ordering::SeqCst) {
                    return;
                }
                if u.queued.fetch_add(1, Ordering::SeqCst) >= DGRAM_QUEUE {
                    u.queued.fetch_sub(1, Ordering::SeqCst);
                    tracing::debug!(key, "machine behind; datagram dropped");
                    continue;
                }
                let ev = Ev::Datagram {
                    key,
                    from: meta.from,
                    dst: meta.dst,
                    ifindex: meta.ifindex,
                    bytes: buf[..meta.len].to_vec(),
                };
                if tx.send(ev).is_err() {
                    return;
                }
            }
            Err(e) if transient(&e) => {}
            Err(e) => {
                // ICMP errors of earlier sends surface here; the socket
                // itself is fine.
                tracing::debug!(key, error = %e, "datagram receive failed");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

// ---- listeners ----------------------------------------------------------------

/// A listener's accept thread.
pub(crate) struct Acceptor {
    sock: Arc<Socket>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    /// Accepts on `sock` until stopped, handing each connection (with its
    /// local and peer address) to `on_accept`.
    pub(crate) fn start(
        sock: Socket,
        mut on_accept: impl FnMut(Socket, Addr, Addr) + Send + 'static,
    ) -> io::Result<Acceptor> {
        sock.set_nonblocking(false)?;
        let sock = Arc::new(sock);
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (sock.clone(), stop.clone());
        let thread = spawn_io("twill-accept", move || loop {
            let r = s.accept();
            if st.load(Ordering::SeqCst) {
                return;
            }
            match r {
                Ok((conn, peer)) => {
                    let local = conn.local_addr().map_or(Addr::Unknown, |a| addr_of(&a));
                    if conn.local_addr().is_ok_and(|a| a.as_socket().is_some()) {
                        let _ = conn.set_nodelay(true);
                    }
                    on_accept(conn, local, addr_of(&peer));
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => {}
                    _ => {
                        // Out of descriptors, most likely: wait for some
                        // to come back rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                },
            }
        })?;
        Ok(Acceptor {
            sock,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> Option<SockAddr> {
        self.sock.local_addr().ok()
    }

    /// Stops accepting: on Linux `shutdown` wakes a blocked `accept`.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.sock.shutdown(Shutdown::Both);
    }

    /// Waits for the accept thread to end.
    pub(crate) fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
    }
}
