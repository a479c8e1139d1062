//! `twill sendmail` (the twill-smtp client machine) against aiosmtpd, a
//! real peer started by the test script: STARTTLS, AUTH, per-recipient
//! results, dot-stuffing and 8-bit bodies.

mod common;

use common::run_python;

#[test]
fn sendmail_against_aiosmtpd() {
    let dir = std::env::temp_dir().join(format!("twill-sendmail-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (cert, key) = twill::serve_tls::write_cert(vec!["127.0.0.1".into()], &dir).expect("cert");
    let out = run_python(
        "mail_aiosmtpd.py",
        &[env!("CARGO_BIN_EXE_twill"), &cert, &key],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["plain ok", "auth ok", "bad auth ok", "no tls ok"]
    );
}
