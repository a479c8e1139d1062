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
