//! Sockets from endpoints, shared by every driver: binding with the
//! endpoint's options, datagrams with their destination address, multicast
//! membership, abortive close, `sendfile`, and errors in one line.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};
use twill_core::{MulticastOp, OpenError, ServerEndpoint};

/// A socket bound for a server endpoint (blocking mode; drivers switch it
/// to non-blocking as they need).
#[derive(Debug)]
pub enum Bound {
    /// `tcp:`/`tcp6:`/`ssl:`.
    Tcp(TcpListener),
    /// `unix:`.
    Unix(UnixListener, String),
    /// `udp:`.
    Udp(UdpSocket),
}

/// Binding an endpoint failed; the message is one line for a person.
#[derive(Debug, thiserror::Error)]
#[error("{endpoint}: {message}")]
pub struct BindError {
    /// The endpoint as given.
    pub endpoint: String,
    /// What went wrong.
    pub message: String,
    /// The underlying error kind.
    pub kind: io::ErrorKind,
}

fn bind_error(ep: &ServerEndpoint, e: io::Error, what: &str) -> BindError {
    let message = match e.kind() {
        io::ErrorKind::AddrInUse => format!("{what}: address already in use"),
        io::ErrorKind::PermissionDenied => format!("{what}: permission denied"),
        io::ErrorKind::AddrNotAvailable => format!("{what}: address not available on this host"),
        _ => format!("{what}: {e}"),
    };
    BindError {
        endpoint: ep.to_string(),
        message,
        kind: e.kind(),
    }
}

/// Binds a server endpoint. `ssl:` binds its TCP socket (the TLS layer is
/// the machine's business).
pub fn bind(ep: &ServerEndpoint) -> Result<Bound, BindError> {
    match ep {
        ServerEndpoint::Tcp {
            port,
            interface,
            backlog,
            ..
        } => {
            let addr = SocketAddr::new(*interface, *port);
            bind_tcp(addr, backlog.unwrap_or(1024))
                .map(Bound::Tcp)
                .map_err(|e| bind_error(ep, e, &format!("cannot listen on {addr}")))
        }
        ServerEndpoint::Unix {
            path,
            mode,
            backlog,
        } => bind_unix(path, *mode, backlog.unwrap_or(1024))
            .map(|l| Bound::Unix(l, path.clone()))
            .map_err(|e| bind_error(ep, e, &format!("cannot listen on {path}"))),
        ServerEndpoint::Udp {
            port,
            interface,
            multicast,
        } => {
            let addr = SocketAddr::new(*interface, *port);
            bind_udp(addr, multicast)
                .map(Bound::Udp)
                .map_err(|e| bind_error(ep, e, &format!("cannot bind {addr}")))
        }
        _ => Err(BindError {
            endpoint: ep.to_string(),
            message: "this endpoint type is not served yet".into(),
            kind: io::ErrorKind::Unsupported,
        }),
    }
}

/// A TCP listener with `SO_REUSEADDR` (restarts do not wait for
/// TIME_WAIT) and the given backlog.
pub fn bind_tcp(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // `tcp6:` means IPv6 only; `tcp:` with `::` would otherwise take
        // the IPv4 port too.
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(s.into())
}

/// A Unix stream listener. A stale socket file left by a dead server is
/// replaced; a live one is `AddrInUse`. A missing directory is reported as
/// such.
pub fn bind_unix(path: &str, mode: Option<u32>, backlog: u32) -> io::Result<UnixListener> {
    let p = Path::new(path);
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("directory {} does not exist", dir.display()),
            ));
        }
    }
    if p.exists() {
        use std::os::unix::fs::FileTypeExt;
        let is_socket = std::fs::symlink_metadata(p)?.file_type().is_socket();
        if !is_socket {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            ));
        }
        match UnixStream::connect(p) {
            Ok(_) => return Err(io::Error::from(io::ErrorKind::AddrInUse)),
            Err(_) => std::fs::remove_file(p)?,
        }
    }
    let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    s.bind(&SockAddr::unix(p)?)?;
    s.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    if let Some(m) = mode {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m))?;
    }
    Ok(s.into())
}

/// A UDP socket; with multicast groups it shares the port with other
/// members (`SO_REUSEADDR`/`SO_REUSEPORT`) and joins them. For a multicast
/// endpoint `addr`'s IP names the interface to join on (and to send
/// multicast from), while the socket binds the wildcard address, since a
/// socket bound to a unicast address never sees datagrams sent to a group.
/// Destination addresses are requested (`IP_PKTINFO`) for
/// [`recv_datagram`].
pub fn bind_udp(addr: SocketAddr, groups: &[IpAddr]) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let mut bind_addr = addr;
    let mut interface = None;
    if !groups.is_empty() {
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        if !addr.ip().is_unspecified() {
            interface = Some(addr.ip());
            let any = if addr.is_ipv6() {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            };
            bind_addr = SocketAddr::new(any, addr.port());
        }
        if let Some(IpAddr::V4(i)) = interface {
            s.set_multicast_if_v4(&i)?;
        }
    }
    if addr.is_ipv6() {
        s.set_only_v6(false).ok();
    }
    s.bind(&bind_addr.into())?;
    let sock: UdpSocket = s.into();
    enable_pktinfo(&sock, addr.is_ipv6())?;
    for g in groups {
        multicast(
            &sock,
            &MulticastOp::Join {
                group: *g,
                interface,
            },
        )?;
    }
    Ok(sock)
}

/// Asks the kernel for each datagram's destination address and interface.
pub fn enable_pktinfo(sock: &impl AsFd, v6: bool) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    if v6 {
        setsockopt(sock, sockopt::Ipv6RecvPacketInfo, &true)?;
    } else {
        setsockopt(sock, sockopt::Ipv4PacketInfo, &true)?;
    }
    Ok(())
}

/// One received datagram's metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatagramMeta {
    /// Bytes received.
    pub len: usize,
    /// Sender.
    pub from: SocketAddr,
    /// The destination address (a multicast group or ours).
    pub dst: IpAddr,
    /// Arrival interface (0 = unknown).
    pub ifindex: u32,
}

/// Receives one datagram with its destination address. `local` is the
/// socket's address, used when the kernel gives no packet info.
pub fn recv_datagram(sock: &impl AsFd, buf: &mut [u8], local: IpAddr) -> io::Result<DatagramMeta> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage};
    use std::os::fd::AsRawFd;
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(nix::libc::in6_pktinfo);
    let fd = sock.as_fd().as_raw_fd();
    let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())?;
    let mut dst = local;
    let mut ifindex = 0;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            match c {
                ControlMessageOwned::Ipv4PacketInfo(pi) => {
                    dst = IpAddr::V4(Ipv4Addr::from(u32::from_be(pi.ipi_addr.s_addr)));
                    ifindex = pi.ipi_ifindex as u32;
                }
                ControlMessageOwned::Ipv6PacketInfo(pi) => {
                    let a = std::net::Ipv6Addr::from(pi.ipi6_addr.s6_addr);
                    dst = a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4);
                    ifindex = pi.ipi6_ifindex;
                }
                _ => {}
            }
        }
    }
    let from = msg
        .address
        .and_then(|a: SockaddrStorage| {
            if let Some(v4) = a.as_sockaddr_in() {
                Some(SocketAddr::V4(SocketAddrV4::from(*v4)))
            } else {
                a.as_sockaddr_in6().map(|v6| {
                    let v6 = SocketAddrV6::from(*v6);
                    match v6.ip().to_ipv4_mapped() {
                        Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
                        None => SocketAddr::V6(v6),
                    }
                })
            }
            .filter(|_| a.family().is_some())
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram without a sender"))?;
    Ok(DatagramMeta {
        len: msg.bytes,
        from,
        dst,
        ifindex,
    })
}

/// Applies a multicast change to a datagram socket.
pub fn multicast(sock: &impl AsFd, op: &MulticastOp) -> io::Result<()> {
    let s = SockRef::from(sock);
    let v4_if = |i: &Option<IpAddr>| match i {
        Some(IpAddr::V4(a)) => *a,
        _ => Ipv4Addr::UNSPECIFIED,
    };
    let v6 = s.local_addr()?.is_ipv6();
    match op {
        MulticastOp::Join {
            group: IpAddr::V4(g),
            interface,
        } => s.join_multicast_v4(g, &v4_if(interface)),
        MulticastOp::Leave {
            group: IpAddr::V4(g),
            interface,
        } => s.leave_multicast_v4(g, &v4_if(interface)),
        MulticastOp::Join {
            group: IpAddr::V6(g),
            ..
        } => s.join_multicast_v6(g, 0),
        MulticastOp::Leave {
            group: IpAddr::V6(g),
            ..
        } => s.leave_multicast_v6(g, 0),
        MulticastOp::Ttl(t) if v6 => s.set_multicast_hops_v6(*t),
        MulticastOp::Ttl(t) => s.set_multicast_ttl_v4(*t),
        MulticastOp::Loopback(on) if v6 => s.set_multicast_loop_v6(*on),
        MulticastOp::Loopback(on) => s.set_multicast_loop_v4(*on),
        _ => Err(io::Error::from(io::ErrorKind::Unsupported)),
    }
}

/// Makes the next close of this stream a reset (`SO_LINGER` 0), for
/// `Close::Abort`.
pub fn set_abortive(sock: &impl AsFd) {
    let _ = SockRef::from(sock).set_linger(Some(std::time::Duration::ZERO));
}

/// Sends up to `len` bytes of `file` from `offset` with `sendfile`;
/// returns how many went (may be short on a non-blocking socket).
pub fn sendfile(sock: &impl AsFd, file: &File, offset: u64, len: u64) -> io::Result<usize> {
    let mut off =
        i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let count = usize::try_from(len.min(1 << 30)).unwrap_or(1 << 30);
    match nix::sys::sendfile::sendfile(sock, file, Some(&mut off), count) {
        Ok(0) if count > 0 => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shorter than the range sent",
        )),
        Ok(n) => Ok(n),
        Err(e) => Err(e.into()),
    }
}

/// The typed error an `Open` failure becomes.
pub fn open_error(e: &io::Error) -> OpenError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => OpenError::Refused,
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => OpenError::TimedOut,
        io::ErrorKind::AddrInUse => OpenError::AddrInUse,
        io::ErrorKind::PermissionDenied => OpenError::PermissionDenied,
        io::ErrorKind::NotFound => OpenError::NotFound,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            OpenError::Unreachable
        }
        io::ErrorKind::Unsupported => OpenError::Unsupported,
        _ => OpenError::Other(e.to_string()),
    }
}

/// Resolves `host:port` (blocking; run it off the event thread).
pub fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| io::Error::new(io::ErrorKind::NotFound, format!("{host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host}: no addresses"),
        ));
    }
    Ok(addrs)
}
