//! UDP on every driver: `twill echo --listen udp:` answers datagrams (Rust
//! and Python's socket module as clients), and two sockets joined to a
//! multicast group on loopback both get a datagram sent to the group.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::{args, run_python, DRIVERS};
use twill::basic::echo::Echo;
use twill::cli::{start, Driver, LogEvents};
use twill_driver::Mode;

fn echo(driver: Driver, endpoint: &str) -> twill_driver::Running<Echo> {
    start(args(driver, &[endpoint]), "", Mode::Factory, || {
        (Echo::new(), LogEvents)
    })
    .expect("bind")
}

#[test]
fn udp_echo_every_driver() {
    for driver in DRIVERS {
        let server = echo(driver, "udp:0:interface=127.0.0.1");
        let addr = server.addr();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        for msg in [&b"hello"[..], b"", &[0xAB; 1200][..]] {
            client.send_to(msg, addr).unwrap();
            let mut buf = [0u8; 2048];
            let (n, from) = client.recv_from(&mut buf).expect("echo reply");
            assert_eq!(&buf[..n], msg, "{driver:?}");
            assert_eq!(from, addr, "{driver:?}: reply from the socket asked");
        }
        run_python("udp_echo.py", &["127.0.0.1", &addr.port().to_string()]);
        server.stop();
        server.wait().unwrap();
    }
}

#[test]
fn multicast_reaches_both_members_every_driver() {
    for (i, driver) in DRIVERS.into_iter().enumerate() {
        let group: Ipv4Addr = format!("239.255.42.{}", 10 + i).parse().unwrap();
        // Both members on one port, joined on the loopback interface.
        let first = echo(
            driver,
            &format!("udp:0:interface=127.0.0.1:multicast={group}"),
        );
        let port = first.addr().port();
        let second = echo(
            driver,
            &format!("udp:{port}:interface=127.0.0.1:multicast={group}"),
        );

        let sender =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        sender.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
        sender.set_multicast_loop_v4(true).unwrap();
        sender
            .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .unwrap();
        let sender: UdpSocket = sender.into();
        sender
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        sender.send_to(b"to the group", (group, port)).unwrap();

        // Each member echoes what it got back to the sender: two replies.
        let mut replies = 0;
        let mut buf = [0u8; 64];
        while let Ok((n, _)) = sender.recv_from(&mut buf) {
            assert_eq!(&buf[..n], b"to the group");
            replies += 1;
            if replies == 2 {
                break;
            }
        }
        assert_eq!(
            replies, 2,
            "{driver:?}: both group members must receive the datagram"
        );
        first.stop();
        second.stop();
        first.wait().unwrap();
        second.wait().unwrap();
    }
}
