//! The tokio sockets the driver moves bytes over: one enum for TCP and
//! Unix streams, one for their listeners, so the rest of the driver is
//! written once for both.

use std::future::poll_fn;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::task::{Context, Poll};

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use twill_core::Addr;
use twill_driver::{BindError, Bound, LocalAddr};

/// A connected stream socket.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

macro_rules! both {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Stream::Tcp($s) => $e,
            Stream::Unix($s) => $e,
        }
    };
}

impl Stream {
    /// A TCP stream with Nagle off: the driver already batches a drain's
    /// writes into one vectored write, so delaying small segments only adds
    /// latency to request/response protocols.
    pub(crate) fn tcp(s: TcpStream) -> Stream {
        let _ = s.set_nodelay(true);
        Stream::Tcp(s)
    }

    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        both!(self, s => s.poll_read_ready(cx))
    }

    pub(crate) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        both!(self, s => s.poll_write_ready(cx))
    }

    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        both!(self, s => s.try_read(buf))
    }

    /// Reads into `buf` if tokio thinks the socket readable (`WouldBlock`
    /// at once, without a system call, if not). A short read clears tokio's
    /// readiness (as tokio's own `poll_read` does), so the caller's next
    /// [`Stream::poll_read_ready`] registers its waker instead of costing
    /// a read that would only say `WouldBlock`; unlike it, it does not go
    /// through tokio's cooperative budget and readiness poll, which cost
    /// more than the read's own bookkeeping (a thread-local access and a
    /// second look at the readiness).
    pub(crate) fn read_draining(&self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        let mut short = 0;
        // `try_io` clears the readiness it saw when the closure says
        // `WouldBlock`: a short read says so, keeping its count aside.
        let r = self.try_io(Interest::READABLE, || {
            // The socket's own read: `try_io` already looked at tokio's
            // readiness, which `try_read` would do again.
            let n = (&*SockRef::from(self)).read(buf)?;
            if 0 < n && n < len {
                short = n;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match r {
            Err(_) if short > 0 => Ok(short),
            r => r,
        }
    }

    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        both!(self, s => s.try_write(buf))
    }

    pub(crate) fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        both!(self, s => s.try_write_vectored(bufs))
    }

    pub(crate) fn try_io<R>(
        &self,
        interest: Interest,
        f: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        both!(self, s => s.try_io(interest, f))
    }

    /// Waits until the socket may be readable (for lingering closes).
    pub(crate) async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_read_ready(cx)).await
    }

    /// Our end and theirs, as machines see them.
    pub(crate) fn addrs(&self) -> (Addr, Addr) {
        match self {
            Stream::Tcp(s) => (ip_addr(s.local_addr()), ip_addr(s.peer_addr())),
            Stream::Unix(s) => (unix_addr(s.local_addr()), unix_addr(s.peer_addr())),
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        both!(self, s => s.as_fd())
    }
}

fn ip_addr(a: io::Result<SocketAddr>) -> Addr {
    a.map_or(Addr::Unknown, Addr::Ip)
}

fn unix_addr(a: io::Result<tokio::net::unix::SocketAddr>) -> Addr {
    match a {
        Ok(a) => Addr::Unix(a.as_pathname().map(|p| p.to_string_lossy().into_owned())),
        Err(_) => Addr::Unknown,
    }
}

/// A listening stream socket.
#[derive(Debug)]
pub(crate) enum ListenIo {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl ListenIo {
    pub(crate) fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<Stream>> {
        match self {
            ListenIo::Tcp(l) => l.poll_accept(cx).map_ok(|(s, _)| Stream::tcp(s)),
            ListenIo::Unix(l) => l.poll_accept(cx).map_ok(|(s, _)| Stream::Unix(s)),
        }
    }

    pub(crate) async fn accept(&self) -> io::Result<Stream> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }
}

/// Whether an accept error concerns only the one connection (the next
/// accept may well succeed) rather than the process (out of descriptors).
pub(crate) fn accept_error_is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// A bound endpoint socket, registered with tokio.
#[derive(Debug)]
pub(crate) enum Endpoint {
    Listen(ListenIo),
    Udp(tokio::net::UdpSocket),
}

/// Moves a socket bound by `twill_driver::net::bind` into tokio (which
/// needs the runtime's reactor: call inside a runtime).
pub(crate) fn register(
    endpoint: &str,
    bound: Bound,
) -> Result<(Endpoint, LocalAddr, Option<String>), BindError> {
    let fail = |e: io::Error| BindError {
        endpoint: endpoint.to_string(),
        message: format!("cannot register the socket with tokio: {e}"),
        kind: e.kind(),
    };
    match bound {
        Bound::Tcp(l) => {
            l.set_nonblocking(true).map_err(fail)?;
            let addr = l.local_addr().map_err(fail)?;
            let l = TcpListener::from_std(l).map_err(fail)?;
            Ok((
                Endpoint::Listen(ListenIo::Tcp(l)),
                LocalAddr::Tcp(addr),
                None,
            ))
        }
        Bound::Unix(l, path) => {
            l.set_nonblocking(true).map_err(fail)?;
            let l = UnixListener::from_std(l).map_err(fail)?;
            Ok((
                Endpoint::Listen(ListenIo::Unix(l)),
                LocalAddr::Unix(path.clone()),
                Some(path),
            ))
        }
        Bound::Udp(s) => {
            s.set_nonblocking(true).map_err(fail)?;
            let addr = s.local_addr().map_err(fail)?;
            let s = tokio::net::UdpSocket::from_std(s).map_err(fail)?;
            Ok((Endpoint::Udp(s), LocalAddr::Udp(addr), None))
        }
    }
}

/// Removes the socket files of Unix listeners once the server is done,
/// so the next start does not find a stale file.
pub(crate) fn remove_socket_files(paths: &[String]) {
    for p in paths {
        if let Err(e) = std::fs::remove_file(p) {
            tracing::debug!(path = %p, error = %e, "could not remove the socket file");
        }
    }
}
