//! Runs every transcript of `spec-vectors/smtp/` against the server
//! machine, whole, byte at a time and split at random
//! (`assert_chunking`). `# compare: message`: the server's replies are
//! compared as parsed replies — the sequence of reply codes — so greeting
//! texts and reason phrases may differ. Headers configure the server:
//! `# hostname:`, `# local-domains:` (space-separated), `# users:` (the
//! local parts that exist), `# passwords: user:pass …`, `# max-size:`.

mod common;

use common::{codes, config, Auto};
use twill_core::testing::{assert_chunking, load_vectors, Side, Turn, Vector};
use twill_core::{Close, ConnId};

fn run(v: &Vector) {
    assert_eq!(v.header("compare"), Some("message"), "{}", v.name);
    let host = v.header("hostname").unwrap_or("localhost");
    let domains: Vec<&str> = v
        .header("local-domains")
        .map(|d| d.split(' ').collect())
        .unwrap_or_else(|| vec![host]);
    let users: Option<Vec<&str>> = v.header("users").map(|u| u.split(' ').collect());
    let passwords: Vec<(&str, &str)> = v
        .header("passwords")
        .map(|p| {
            p.split(' ')
                .map(|up| up.split_once(':').expect("user:pass"))
                .collect()
        })
        .unwrap_or_default();
    let mut cfg = config(host, &domains, users.as_deref());
    if let Some(m) = v.header("max-size") {
        cfg.max_size = m.parse().expect("max-size");
    }
    let steps = v.client_steps().unwrap_or_else(|e| panic!("{e}"));
    let trace = assert_chunking(|| Auto::new(cfg.clone(), &passwords), &steps);

    let mut want = Vec::new();
    for t in v.turns().expect("transcript") {
        if let Turn::Bytes {
            side: Side::Server,
            bytes,
            ..
        } = t
        {
            want.extend_from_slice(bytes);
        }
    }
    let got = trace.sent.get(&ConnId(1)).cloned().unwrap_or_default();
    assert_eq!(
        codes(&got),
        codes(&want),
        "{}: server said {:?}",
        v.name,
        String::from_utf8_lossy(&got)
    );
    let want_close = v.server_close(1);
    let got_close = trace
        .closes
        .iter()
        .find(|(c, _)| *c == ConnId(1))
        .map(|c| c.1);
    assert_eq!(got_close, want_close, "{}: close", v.name);
    if want_close == Some(Close::Graceful) {
        assert_eq!(trace.closes.len(), 1);
    }
}

#[test]
fn smtp_vectors() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec-vectors/smtp");
    let vectors = load_vectors(dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(vectors.len() >= 10, "found {} vectors", vectors.len());
    for v in &vectors {
        run(v);
    }
}
