//! STARTTLS through the TLS layer on every driver, with Python's `ssl`
//! module as the client: the line protocol of `twill_tls::demo` upgrades
//! its connection in place, and plaintext pipelined after the STARTTLS
//! command (the command-injection attack of CVE-2011-0411 and friends)
//! ends that connection without a session while the server keeps serving.

mod common;

use common::{cert, run_python, Cert, DRIVERS};
use twill::cli::Driver;
use twill_core::service::Ignore;
use twill_driver::{Running, ServeOptions};
use twill_tls::demo::StartTlsEcho;
use twill_tls::{ServerSetup, Tls, TlsContext};

/// StartTlsEcho inside the TLS layer on a plain `tcp:` listener: TLS
/// starts only when the protocol asks.
fn serve(driver: Driver, c: &Cert) -> Running<Tls<StartTlsEcho>> {
    let pem = |p: &str| std::fs::read(p).expect("pem");
    let setup = ServerSetup::from_pem(&pem(&c.cert), &pem(&c.key)).expect("setup");
    let ctx = TlsContext::new().with_server(&setup).expect("ctx");
    let opts = ServeOptions::factory(vec!["tcp:0:interface=127.0.0.1".parse().expect("ep")]);
    let make = move || (Tls::new(StartTlsEcho::new(), &ctx), Ignore);
    match driver {
        Driver::Std => twill_std::spawn(opts, make),
        Driver::Mio => twill_mio::spawn(opts, make),
        Driver::Tokio => twill_tokio::spawn(opts, make),
    }
    .expect("serve")
}

fn client(port: u16, c: &Cert, mode: &str) -> String {
    run_python("starttls_client.py", &[&port.to_string(), &c.cert, mode])
}

#[test]
fn starttls_upgrades_on_every_driver() {
    let c = cert("starttls-upgrade", &["localhost"]);
    for driver in DRIVERS {
        let r = serve(driver, &c);
        let out = client(r.addr().port(), &c, "upgrade");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "PLAIN hello in the clear",
                "SECURE hello inside",
                "version=TLSv1.3"
            ],
            "{driver:?}"
        );
        r.stop();
    }
}

#[test]
fn plaintext_pipelined_after_starttls_never_enters_the_session() {
    let c = cert("starttls-inject", &["localhost"]);
    for driver in DRIVERS {
        let r = serve(driver, &c);
        let port = r.addr().port();
        let out = client(port, &c, "inject");
        assert!(
            out.contains("handshake=failed"),
            "{driver:?}: the injected session started: {out}"
        );
        // The injected command was never answered, in the clear or not.
        assert!(!out.contains("RCPT"), "{driver:?}: {out}");
        // Everyone else is still served, TLS included.
        let again = client(port, &c, "upgrade");
        assert!(again.contains("SECURE hello inside"), "{driver:?}: {again}");
        r.stop();
    }
}
