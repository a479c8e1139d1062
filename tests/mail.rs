//! `twill mail` against real clients on every driver: Python's smtplib
//! sends to two users, poplib retrieves and deletes, and every message's
//! bytes survive exactly (8-bit, a 998-octet line, lines starting with a
//! dot); bad input gets the RFC's reply codes while the server goes on.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{run_python, DRIVERS};
use twill::cli::Driver;
use twill::mail::service::Accounts;
use twill::mail::{MailArgs, MailServers};

/// Two users with plain passwords (the argon2 file is tested by `twill
/// passwd`'s own tests; here only the mail path matters).
struct TwoUsers;

impl Accounts for TwoUsers {
    fn contains(&self, name: &str) -> bool {
        name == "alice" || name == "bob"
    }
    fn verify(&self, name: &str, password: &[u8]) -> bool {
        matches!(
            (name, password),
            ("alice", b"alice-pw") | ("bob", b"bob-pw")
        )
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp(tag: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("twill-mail-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    TempDir(d)
}

fn args(driver: Driver, dir: &TempDir) -> MailArgs {
    MailArgs {
        smtp: vec!["tcp:0:interface=127.0.0.1".parse().unwrap()],
        pop3: vec!["tcp:0:interface=127.0.0.1".parse().unwrap()],
        maildir: dir.0.clone(),
        users: PathBuf::from("/nonexistent"),
        hostname: "localhost".into(),
        domains: vec![],
        cert: None,
        key: None,
        max_size: 10 * 1024 * 1024,
        driver,
        max_conns: 100,
    }
}

fn start(driver: Driver, dir: &TempDir) -> MailServers {
    twill::mail::start_with(args(driver, dir), Arc::new(TwoUsers)).expect("twill mail")
}

#[test]
fn smtplib_and_poplib_round_trip_on_every_driver() {
    for driver in DRIVERS {
        let dir = temp(&format!("rt-{driver:?}"));
        let s = start(driver, &dir);
        let out = run_python(
            "mail_clients.py",
            &[
                &s.smtp.addr().port().to_string(),
                &s.pop3.addr().port().to_string(),
                "roundtrip",
            ],
        );
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            [
                "sent",
                "alice ok",
                "bob ok",
                "deleted ok",
                "bad password ok"
            ],
            "{driver:?}"
        );
        s.stop();
    }
}

#[test]
fn bad_input_gets_the_rfc_codes() {
    let dir = temp("errors");
    let s = start(Driver::Mio, &dir);
    let out = run_python(
        "mail_clients.py",
        &[
            &s.smtp.addr().port().to_string(),
            &s.pop3.addr().port().to_string(),
            "errors",
        ],
    );
    assert_eq!(out.trim(), "errors ok");
    s.stop();
}

#[test]
fn starttls_stls_and_auth_on_every_driver() {
    let certs = temp("certs");
    let (cert, key) =
        twill::serve_tls::write_cert(vec!["localhost".into(), "127.0.0.1".into()], &certs.0)
            .expect("cert");
    for driver in DRIVERS {
        let dir = temp(&format!("tls-{driver:?}"));
        let mut a = args(driver, &dir);
        a.cert = Some(cert.clone().into());
        a.key = Some(key.clone().into());
        let s = twill::mail::start_with(a, Arc::new(TwoUsers)).expect("twill mail");
        let out = run_python(
            "mail_clients.py",
            &[
                &s.smtp.addr().port().to_string(),
                &s.pop3.addr().port().to_string(),
                "tls",
                &cert,
            ],
        );
        assert_eq!(out.trim(), "tls ok", "{driver:?}");
        s.stop();
        // The message for the other domain waits in the outgoing queue.
        let queued = std::fs::read_dir(dir.0.join(".outgoing/new"))
            .unwrap()
            .count();
        assert_eq!(queued, 1);
    }
}

/// `twill mail` as a process (users from `twill passwd`), killed with
/// SIGKILL: in the middle of a DATA (that message must be absent) and
/// right after a 250 (that message must be present and whole).
#[test]
fn kill_in_data_and_after_250() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::process::{Command, Stdio};

    let dir = temp("kill");
    std::fs::create_dir_all(&dir.0).unwrap();
    let users = dir.0.join("users");
    let bin = env!("CARGO_BIN_EXE_twill");
    let mut p = Command::new(bin)
        .args(["passwd", "--users"])
        .arg(&users)
        .arg("alice")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    p.stdin.take().unwrap().write_all(b"alice-pw\n").unwrap();
    assert!(p.wait().unwrap().success());
    let store = dir.0.join("store");
    let start = || {
        let mut child = Command::new(bin)
            .args([
                "mail",
                "--smtp",
                "tcp:0:interface=127.0.0.1",
                "--pop3",
                "tcp:0:interface=127.0.0.1",
                "--driver",
                "std",
                "--maildir",
            ])
            .arg(&store)
            .arg("--users")
            .arg(&users)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut port = None;
        let mut line = String::new();
        while port.is_none() {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "twill mail exited");
            if let Some(rest) = line.split("SMTP on ").nth(1) {
                port = rest
                    .trim()
                    .rsplit(':')
                    .next()
                    .map(|p| p.parse::<u16>().unwrap());
            }
        }
        // Keep draining stderr so the server never blocks on it.
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        (child, port.unwrap())
    };
    let talk = |s: &mut TcpStream, send: &[u8]| -> String {
        s.write_all(send).unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };

    // Message 1 gets its 250; the server is killed at once.
    let (mut child, port) = start();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 512];
    let _ = s.read(&mut buf).unwrap();
    for cmd in [
        "HELO c\r\n",
        "MAIL FROM:<a@x.org>\r\n",
        "RCPT TO:<alice@localhost>\r\n",
        "DATA\r\n",
    ] {
        let r = talk(&mut s, cmd.as_bytes());
        assert!(r.starts_with('2') || r.starts_with('3'), "{cmd}: {r}");
    }
    let first = b"Subject: first\r\n\r\nkept\r\n";
    let mut wire = first.to_vec();
    wire.extend_from_slice(b".\r\n");
    let r = talk(&mut s, &wire);
    assert!(r.starts_with("250"), "{r}");
    child.kill().unwrap();
    child.wait().unwrap();

    // Message 2 is cut off in the middle of DATA by a kill.
    let (mut child, port) = start();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _ = s.read(&mut buf).unwrap();
    for cmd in [
        "HELO c\r\n",
        "MAIL FROM:<a@x.org>\r\n",
        "RCPT TO:<alice@localhost>\r\n",
        "DATA\r\n",
    ] {
        let _ = talk(&mut s, cmd.as_bytes());
    }
    s.write_all(b"Subject: second\r\n\r\nhalf of a mess")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    child.kill().unwrap();
    child.wait().unwrap();

    let new: Vec<_> = std::fs::read_dir(store.join("alice/new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let stored = std::fs::read(&new[0]).unwrap();
    assert!(
        stored.ends_with(first),
        "{}",
        String::from_utf8_lossy(&stored)
    );
    assert_eq!(
        std::fs::read_dir(store.join("alice/tmp")).unwrap().count(),
        0
    );
}

/// The twill-smtp client delivers and the twill-pop3 client retrieves,
/// both on the std driver's client `Conn`, against `twill mail` on each
/// driver.
#[test]
fn our_clients_against_twill_mail() {
    use twill_core::ClientEndpoint;
    use twill_pop3::{Client as PopClient, ClientConfig as PopConfig, ClientEvent as PopEvent};
    use twill_smtp::{Client, ClientConfig, ClientEvent, Envelope};
    use twill_std::Conn;

    let body = b"Subject: ours\r\n\r\n.dot\r\n\xc3\xa9t\xc3\xa9\r\n".to_vec();
    for driver in DRIVERS {
        let dir = temp(&format!("ours-{driver:?}"));
        let s = start(driver, &dir);
        let ep = |port: u16| -> ClientEndpoint { format!("tcp:127.0.0.1:{port}").parse().unwrap() };

        let mut smtp = Client::new(ClientConfig::default());
        for to in ["alice@localhost", "alice@localhost"] {
            smtp.send_mail(Envelope {
                from: "me@example.org".into(),
                to: vec![to.into()],
                data: body.clone().into(),
            })
            .unwrap();
        }
        smtp.quit();
        let mut conn = Conn::connect(&ep(s.smtp.addr().port()), smtp).unwrap();
        let mut delivered = 0;
        while let Some(e) = conn.next_event().unwrap() {
            match e {
                ClientEvent::Sent(r) => {
                    assert!(r.delivered(), "{r:?}");
                    delivered += 1;
                }
                ClientEvent::Failed(f) => panic!("{f:?}"),
                _ => {}
            }
        }
        assert_eq!(delivered, 2);

        let mut pop = PopClient::new(PopConfig {
            user: "alice".into(),
            password: b"alice-pw".to_vec(),
            ..PopConfig::default()
        });
        pop.stat().unwrap();
        pop.retr(1).unwrap();
        pop.dele(1).unwrap();
        pop.quit();
        let mut conn = Conn::connect(&ep(s.pop3.addr().port()), pop).unwrap();
        let mut got = Vec::new();
        while let Some(e) = conn.next_event().unwrap() {
            match e {
                PopEvent::Response { response, .. } => got.push(response),
                PopEvent::Failed(f) => panic!("{f:?}"),
                _ => {}
            }
        }
        assert_eq!(got.len(), 3, "{driver:?}");
        assert_eq!(got[0].numbers().map(|n| n.0), Some(2));
        assert!(got[1].body.as_ref().unwrap().ends_with(&body));
        assert!(got[2].ok);
        // One left after the UPDATE state.
        let left = std::fs::read_dir(dir.0.join("alice/new")).unwrap().count();
        assert_eq!(left, 1, "{driver:?}");
        s.stop();
    }
}
