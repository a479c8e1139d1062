//! The client machine's explicit TLS (RFC 4217) under a simulated driver
//! and TLS layer: AUTH TLS before the login, the control connection's
//! session asked for after 234, PBSZ 0 and PROT P after the login, each
//! data connection secured before it carries anything, and no fall-back
//! to plaintext.

use bytes::Bytes;
use twill_core::testing::Sim;
use twill_core::{Addr, ConnId, Input, Open, Role, TlsInfo};
use twill_ftp::{Client, ClientConfig, ClientEvent, Violation};

const C: ConnId = ConnId(1);

fn ip(s: &str) -> Addr {
    Addr::Ip(s.parse().unwrap())
}

fn tls_client() -> Sim<Client> {
    let mut s = Sim::new(Client::new(ClientConfig {
        user: "alice".into(),
        password: "secret".into(),
        tls: Some("ftp.test".into()),
        ..ClientConfig::default()
    }));
    s.input(Input::Opened {
        conn: C,
        local: ip("127.0.0.1:40000"),
        peer: ip("127.0.0.1:21"),
    });
    s
}

fn starttls(s: &Sim<Client>, conn: ConnId) -> bool {
    s.opens.iter().any(|(c, how)| {
        *c == conn
            && matches!(how, Open::StartTls { role: Role::Client, server_name: Some(n), .. } if n == "ftp.test")
    })
}

fn secured(s: &mut Sim<Client>, conn: ConnId) {
    s.input(Input::Secured {
        conn,
        info: TlsInfo::default(),
    });
}

#[test]
fn auth_tls_then_login_then_pbsz_prot_and_secured_data() {
    let mut s = tls_client();
    let id = s.machine.get("f.bin", 0).unwrap();
    s.drain();
    s.data(C, b"220 hi\r\n");
    assert_eq!(s.sent_text(C), "AUTH TLS\r\n");
    s.data(C, b"234 go\r\n");
    assert!(starttls(&s, C));
    assert_eq!(
        s.sent_text(C),
        "AUTH TLS\r\n",
        "nothing before the handshake"
    );
    secured(&mut s, C);
    s.data(C, b"331 pw\r\n230 in\r\n200 PBSZ=0\r\n200 P\r\n200 I\r\n");
    assert_eq!(
        s.sent_text(C),
        "AUTH TLS\r\nUSER alice\r\nPASS secret\r\nPBSZ 0\r\nPROT P\r\nTYPE I\r\nEPSV\r\n"
    );
    s.data(C, b"229 ok (|||50000|)\r\n");
    let (d, _) = s
        .opens
        .iter()
        .find(|(_, how)| matches!(how, Open::Connect { port: 50000, .. }))
        .cloned()
        .expect("a data connection");
    s.opened(d);
    // The session is asked for and RETR goes at once; data only after.
    assert!(starttls(&s, d));
    assert!(s.sent_text(C).ends_with("RETR f.bin\r\n"));
    secured(&mut s, d);
    s.data(C, b"150 here\r\n");
    s.data(d, b"payload");
    assert!(s.events.contains(&ClientEvent::Data {
        id,
        data: Bytes::from_static(b"payload")
    }));
}

#[test]
fn a_refused_auth_tls_ends_the_session() {
    let mut s = tls_client();
    s.machine.get("f.bin", 0).unwrap();
    s.drain();
    s.data(C, b"220 hi\r\n502 no TLS here\r\n");
    assert!(s.events.iter().any(|e| matches!(e, ClientEvent::Failed(_))));
    assert!(!s.sent_text(C).contains("USER"), "no plaintext login");
}

#[test]
fn plaintext_after_234_is_refused() {
    let mut s = tls_client();
    s.drain();
    s.data(C, b"220 hi\r\n");
    s.data(C, b"234 go\r\n230 injected\r\n");
    assert!(s.events.iter().any(|e| matches!(
        e,
        ClientEvent::Failed(twill_ftp::ClientError::Protocol(
            Violation::PlaintextAfterAuth
        ))
    )));
}
