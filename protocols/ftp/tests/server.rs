//! The server machine under a simulated driver: the data channel's
//! life (PASV listener, accept, transfer, close) and the rule that a
//! transfer completes only when both its data connection's end and the
//! application's end are seen, in either order; the passive port range;
//! foreign data connections; the login delay; bounded lines.

use bytes::Bytes;
use twill_core::testing::Sim;
use twill_core::{Addr, Close, ConnId, Duration, Input, ListenerId, Open, OpenError};
use twill_ftp::{Op, RequestId, Server, ServerConfig, ServerEvent, Violation};

const C: ConnId = ConnId(1);
const D: ConnId = ConnId(2);

fn ip(s: &str) -> Addr {
    Addr::Ip(s.parse().unwrap())
}

fn logged_in(cfg: ServerConfig) -> Sim<Server> {
    let mut s = Sim::new(Server::new(ServerConfig {
        anonymous: true,
        ..cfg
    }));
    s.input(Input::Accepted {
        conn: C,
        listener: ListenerId(1),
        local: ip("127.0.0.1:21"),
        peer: ip("127.0.0.1:40000"),
    });
    s.data(C, b"USER anonymous\r\nPASS x\r\n");
    assert!(s
        .sent_text(C)
        .ends_with("230 Login successful (read-only).\r\n"));
    s
}

/// PASV, the listener opens, the client connects from `from`.
fn passive(s: &mut Sim<Server>, from: &str) -> ConnId {
    s.data(C, b"PASV\r\n");
    let (l, how) = s.opens.last().cloned().expect("a listen");
    assert!(matches!(how, Open::Listen(a) if a.ip().to_string() == "127.0.0.1"));
    s.opens.clear();
    s.input(Input::Opened {
        conn: l,
        local: ip("127.0.0.1:50007"),
        peer: ip("127.0.0.1:50007"),
    });
    assert!(s
        .sent_text(C)
        .ends_with("227 Entering Passive Mode (127,0,0,1,195,87).\r\n"));
    s.input(Input::Accepted {
        conn: D,
        listener: ListenerId(l.0),
        local: ip("127.0.0.1:50007"),
        peer: ip(from),
    });
    l
}

fn last_request(s: &Sim<Server>) -> (RequestId, Op) {
    s.events
        .iter()
        .rev()
        .find_map(|e| match e {
            ServerEvent::Request { id, op } => Some((*id, op.clone())),
            _ => None,
        })
        .expect("a request")
}

#[test]
fn download_ends_only_after_the_data_connection_closed() {
    let mut s = logged_in(ServerConfig::default());
    s.auto_closed = false;
    let l = passive(&mut s, "127.0.0.1:40001");
    assert!(
        s.closes.contains(&(l, Close::Abort)),
        "one connection per PASV"
    );
    s.data(C, b"RETR f.bin\r\n");
    let (id, op) = last_request(&s);
    assert!(matches!(
        op,
        Op::Retr {
            offset: 0,
            ascii: false,
            ..
        }
    ));
    s.machine
        .send_data(id, Bytes::from_static(b"payload"))
        .unwrap();
    s.drain();
    assert!(s.sent_text(C).ends_with(
        "125 Data connection already open; BINARY mode data connection for /f.bin.\r\n"
    ));
    s.machine.finish(id).unwrap();
    s.drain();
    assert_eq!(s.sent[&D], b"payload");
    assert!(s.closes.contains(&(D, Close::Graceful)));
    // The application is done, the data connection not yet: no 226.
    assert!(!s.sent_text(C).contains("226"));
    s.closed(D);
    assert!(s.sent_text(C).ends_with("226 Transfer complete.\r\n"));
    assert!(s
        .events
        .contains(&ServerEvent::TransferDone { id, bytes: 7 }));
}

#[test]
fn upload_ends_after_eof_and_the_application_in_either_order() {
    for app_first in [false, true] {
        let mut s = logged_in(ServerConfig::default());
        s.data(C, b"USER u\r\n");
        // Named users need the application; log in as one.
        s.data(C, b"PASS p\r\n");
        let id = s
            .events
            .iter()
            .find_map(|e| match e {
                ServerEvent::Login { id, .. } => Some(*id),
                _ => None,
            })
            .unwrap();
        s.machine.login(id, true).unwrap();
        s.drain();
        passive(&mut s, "127.0.0.1:40001");
        // The client sends data before the application is ready: held.
        s.data(C, b"STOR up.bin\r\n");
        s.data(D, b"hello ");
        assert_eq!(s.held(D), 6);
        let (id, _) = last_request(&s);
        s.machine.start_upload(id).unwrap();
        s.drain();
        s.data(D, b"world");
        let got: Vec<u8> = s
            .events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Upload { data, .. } => Some(data.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(got, b"hello world");
        s.machine.consumed(id, 11).unwrap();
        if app_first {
            // The application's end first: no 226 until the data ends.
            s.machine.done(id).unwrap();
            s.drain();
            assert!(!s.sent_text(C).contains("226"));
            s.eof(D);
        } else {
            s.eof(D);
            assert!(s.events.contains(&ServerEvent::UploadEnd { id }));
            assert!(!s.sent_text(C).contains("226"));
            s.machine.done(id).unwrap();
            s.drain();
        }
        assert!(s.sent_text(C).ends_with("226 Transfer complete.\r\n"));
    }
}

#[test]
fn a_lost_data_connection_is_426_and_the_session_goes_on() {
    let mut s = logged_in(ServerConfig::default());
    passive(&mut s, "127.0.0.1:40001");
    s.data(C, b"RETR f.bin\r\nNOOP\r\n");
    let (id, _) = last_request(&s);
    s.machine
        .send_data(id, Bytes::from_static(b"partial"))
        .unwrap();
    s.drain();
    // NOOP is served during a transfer.
    assert!(s.sent_text(C).contains("200 NOOP ok.\r\n"));
    s.closed(D);
    assert!(s
        .sent_text(C)
        .ends_with("426 Connection closed; transfer aborted.\r\n"));
    assert!(s.events.contains(&ServerEvent::Aborted { id }));
    assert!(s.machine.finish(id).is_err());
    s.data(C, b"PWD\r\n");
    assert!(s
        .sent_text(C)
        .ends_with("257 \"/\" is the current directory.\r\n"));
}

#[test]
fn commands_wait_behind_a_pending_request() {
    let mut s = logged_in(ServerConfig::default());
    s.data(C, b"SIZE a\r\nPWD\r\n");
    let (id, _) = last_request(&s);
    assert!(!s.sent_text(C).contains("257"), "PWD waits for SIZE");
    s.machine.size(id, 42).unwrap();
    s.drain();
    assert!(s
        .sent_text(C)
        .ends_with("213 42\r\n257 \"/\" is the current directory.\r\n"));
}

#[test]
fn passive_port_range_walks_past_busy_ports() {
    let mut s = logged_in(ServerConfig {
        passive_ports: Some((50_000, 50_002)),
        ..ServerConfig::default()
    });
    s.data(C, b"EPSV\r\n");
    let mut ports = Vec::new();
    for _ in 0..3 {
        let (l, how) = s.opens.pop().expect("a listen");
        let Open::Listen(a) = how else { panic!() };
        ports.push(a.port());
        s.open_failed(l, OpenError::AddrInUse);
    }
    ports.sort();
    assert_eq!(ports, [50_000, 50_001, 50_002]);
    assert!(s.opens.is_empty(), "the range is exhausted");
    assert!(s
        .sent_text(C)
        .ends_with("425 Cannot open a passive connection.\r\n"));
}

#[test]
fn foreign_data_connections_are_refused() {
    let mut s = logged_in(ServerConfig::default());
    s.data(C, b"PASV\r\n");
    let (l, _) = s.opens.pop().unwrap();
    s.input(Input::Opened {
        conn: l,
        local: ip("127.0.0.1:50007"),
        peer: ip("127.0.0.1:50007"),
    });
    s.input(Input::Accepted {
        conn: D,
        listener: ListenerId(l.0),
        local: ip("127.0.0.1:50007"),
        peer: ip("10.9.9.9:1234"),
    });
    assert!(s.closes.contains(&(D, Close::Abort)));
    assert!(!s.closes.contains(&(l, Close::Abort)), "still listening");
    assert!(s
        .events
        .contains(&ServerEvent::Violation(Violation::ForeignDataConnection)));
    // Bounce: PORT to another host, or to a privileged port.
    s.data(C, b"PORT 10,9,9,9,4,1\r\nPORT 127,0,0,1,0,21\r\n");
    assert!(s
        .sent_text(C)
        .ends_with("500 Illegal PORT command.\r\n500 Illegal PORT command.\r\n"));
}

#[test]
fn failed_logins_pause_input_for_a_growing_delay() {
    let mut s = Sim::new(Server::new(ServerConfig::default()));
    s.input(Input::Accepted {
        conn: C,
        listener: ListenerId(1),
        local: ip("127.0.0.1:21"),
        peer: ip("127.0.0.1:40000"),
    });
    s.data(C, b"USER u\r\nPASS bad\r\n");
    let id = match s.events.last() {
        Some(ServerEvent::Login { id, .. }) => *id,
        e => panic!("{e:?}"),
    };
    s.machine.login(id, false).unwrap();
    s.drain();
    s.data(C, b"NOOP\r\n");
    assert_eq!(s.held(C), 6, "input paused during the delay");
    assert!(!s.sent_text(C).contains("530"));
    s.advance(Duration::from_millis(999));
    assert!(!s.sent_text(C).contains("530"));
    s.advance(Duration::from_millis(1));
    assert!(s
        .sent_text(C)
        .ends_with("530 Login incorrect.\r\n200 NOOP ok.\r\n"));
}

#[test]
fn overlong_lines_get_500_and_the_session_continues() {
    let mut s = logged_in(ServerConfig::default());
    let mut long = vec![b'N'; 10_000];
    long.extend_from_slice(b"\r\nNOOP\r\n");
    for chunk in long.chunks(777) {
        s.data(C, chunk);
    }
    assert!(s
        .sent_text(C)
        .ends_with("500 Command line too long.\r\n200 NOOP ok.\r\n"));
}

#[test]
fn a_long_transfer_is_not_idleness() {
    let mut s = logged_in(ServerConfig {
        idle_timeout: Some(Duration::from_secs(10)),
        ..ServerConfig::default()
    });
    passive(&mut s, "127.0.0.1:40001");
    s.data(C, b"RETR f.bin\r\n");
    let (id, _) = last_request(&s);
    s.machine.send_data(id, Bytes::from_static(b"x")).unwrap();
    s.drain();
    s.advance(Duration::from_secs(60));
    s.input(Input::Sent { conn: D, bytes: 1 });
    s.machine.finish(id).unwrap();
    s.drain();
    assert!(s.sent_text(C).ends_with("226 Transfer complete.\r\n"));
    s.advance(Duration::from_secs(9));
    assert!(!s.sent_text(C).contains("421"));
    s.advance(Duration::from_secs(2));
    assert!(s
        .sent_text(C)
        .ends_with("421 Timeout; closing control connection.\r\n"));
}

/// A fuzz finding: a second `listing` answer to the same LIST sent the
/// lines again on the data connection after its close. It is refused.
#[test]
fn a_listing_is_answered_once() {
    let mut s = logged_in(ServerConfig::default());
    s.auto_closed = false;
    passive(&mut s, "127.0.0.1:40001");
    s.data(C, b"LIST\r\n");
    let (id, _) = last_request(&s);
    s.machine.listing(id, Bytes::from_static(b"a\r\n")).unwrap();
    s.drain();
    assert!(s.closes.contains(&(D, Close::Graceful)));
    assert_eq!(
        s.machine.listing(id, Bytes::from_static(b"a\r\n")),
        Err(twill_ftp::Error::Finished)
    );
    s.drain();
    assert_eq!(s.sent[&D], b"a\r\n", "nothing more after the close");
    s.closed(D);
    assert!(s.sent_text(C).ends_with("226 Transfer complete.\r\n"));
}

// ---- AUTH TLS / PBSZ / PROT (RFC 4217) --------------------------------

fn tls_config() -> ServerConfig {
    ServerConfig {
        tls: true,
        ..ServerConfig::default()
    }
}

fn starttls_on(s: &Sim<Server>, conn: ConnId) -> bool {
    s.opens.iter().any(|(c, how)| {
        *c == conn
            && matches!(
                how,
                Open::StartTls {
                    role: twill_core::Role::Server,
                    ..
                }
            )
    })
}

fn secured(s: &mut Sim<Server>, conn: ConnId) {
    s.input(Input::Secured {
        conn,
        info: twill_core::TlsInfo::default(),
    });
}

/// AUTH TLS: 234, `StartTls` on the control connection, and nothing past
/// the command is taken; once `Secured`, the login starts over.
#[test]
fn auth_tls_upgrades_in_place_and_forgets_the_login() {
    let mut s = logged_in(tls_config());
    s.data(C, b"FEAT\r\n");
    let feat = s.sent_text(C);
    assert!(
        feat.contains("\r\n AUTH TLS\r\n") && feat.contains("\r\n PBSZ\r\n"),
        "{feat}"
    );
    s.data(C, b"PBSZ 0\r\n");
    assert!(s
        .sent_text(C)
        .ends_with("503 PBSZ needs a protected control connection (AUTH TLS).\r\n"));
    s.data(C, b"AUTH TLS\r\nUSER bob\r\n");
    assert!(s.sent_text(C).ends_with("234 AUTH TLS successful.\r\n"));
    assert!(starttls_on(&s, C));
    assert_eq!(
        s.held(C),
        b"USER bob\r\n".len(),
        "bytes after AUTH TLS not taken"
    );
    secured(&mut s, C);
    assert!(s.machine.is_secured() && s.machine.user().is_none());
    s.data(C, b"AUTH TLS\r\n");
    assert!(s.sent_text(C).ends_with("503 Already using TLS.\r\n"));
    s.data(C, b"PROT P\r\n");
    assert!(s.sent_text(C).ends_with("503 PROT needs PBSZ first.\r\n"));
    s.data(C, b"PBSZ 0\r\nPROT S\r\nPROT P\r\n");
    assert!(s
        .sent_text(C)
        .ends_with("200 PBSZ=0\r\n536 Protection level not supported by TLS.\r\n200 Protection level set to Private.\r\n"));
}

/// A PROT P data connection gets its own server session (the client
/// speaks first, so it is asked for at once) and carries nothing before
/// `Secured`; file payloads are refused on it.
#[test]
fn prot_p_data_connections_are_tls_before_use() {
    let mut s = logged_in(tls_config());
    s.auto_closed = false;
    s.data(C, b"AUTH TLS\r\n");
    secured(&mut s, C);
    s.data(C, b"USER anonymous\r\nPASS x\r\nPBSZ 0\r\nPROT P\r\n");
    assert!(s
        .sent_text(C)
        .ends_with("200 Protection level set to Private.\r\n"));
    passive(&mut s, "127.0.0.1:40001");
    assert!(starttls_on(&s, D), "TLS asked for on accept");
    s.data(C, b"RETR f.bin\r\n");
    let (id, _) = last_request(&s);
    assert!(!s.machine.can_send_file(id));
    assert_eq!(
        s.machine.send_file(id, twill_core::FileId(1), 0, 10),
        Err(twill_ftp::Error::WrongAnswer)
    );
    s.machine
        .send_data(id, Bytes::from_static(b"secret"))
        .unwrap();
    s.machine.finish(id).unwrap();
    s.drain();
    assert!(!s.sent.contains_key(&D), "nothing before the handshake");
    secured(&mut s, D);
    assert_eq!(s.sent[&D], b"secret");
    assert!(s.closes.contains(&(D, Close::Graceful)));
    s.closed(D);
    assert!(s.sent_text(C).ends_with("226 Transfer complete.\r\n"));
    // PROT C: clear again, and file payloads are back.
    s.data(C, b"PROT C\r\n");
    passive(&mut s, "127.0.0.1:40002");
    s.data(C, b"RETR f.bin\r\n");
    let (id, _) = last_request(&s);
    assert!(s.machine.can_send_file(id));
}

/// --require-tls: no login on a plain control connection, no transfer
/// without PROT P.
#[test]
fn require_tls_refuses_plain_logins_and_data() {
    let mut s = Sim::new(Server::new(ServerConfig {
        require_tls: true,
        ..tls_config()
    }));
    s.input(Input::Accepted {
        conn: C,
        listener: ListenerId(1),
        local: ip("127.0.0.1:21"),
        peer: ip("127.0.0.1:40000"),
    });
    s.data(C, b"USER alice\r\nPASS x\r\n");
    assert!(s.sent_text(C).ends_with(
        "534 Policy requires TLS: send AUTH TLS first.\r\n530 Policy requires TLS: send AUTH TLS first.\r\n"
    ));
    assert!(!s
        .events
        .iter()
        .any(|e| matches!(e, ServerEvent::Login { .. })));
    s.data(C, b"AUTH TLS\r\n");
    secured(&mut s, C);
    s.data(C, b"USER alice\r\nPASS x\r\n");
    let id = s
        .events
        .iter()
        .find_map(|e| match e {
            ServerEvent::Login { id, .. } => Some(*id),
            _ => None,
        })
        .expect("a login over TLS");
    s.machine.login(id, true).unwrap();
    s.drain();
    passive(&mut s, "127.0.0.1:40001");
    s.data(C, b"RETR f.bin\r\n");
    assert!(s
        .sent_text(C)
        .ends_with("521 Data connections must be protected: use PROT P.\r\n"));
}
