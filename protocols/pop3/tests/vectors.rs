//! Runs every transcript of `spec-vectors/pop3/` against the server
//! machine, whole, byte at a time and split at random. `# compare:
//! message`: each response is compared by its status (`+OK`, `-ERR`,
//! `+`), the text of STAT, `LIST n` and `UIDL n` (numbers the RFC's
//! grammar fixes), and the lines of LIST and UIDL listings; free text and
//! message bodies may differ (the bytes of retrieved messages are checked
//! against real clients in `tests/mail.rs`). Headers: `# maildrop:
//! user:password:size,size …` (synthetic messages of those sizes, uids
//! `uid-N`), `# timestamp:` (a fixed APOP timestamp), `# locked: user`.

mod common;

use common::{responses, Auto};
use twill_core::testing::{assert_chunking, load_vectors, Side, Turn, Vector};
use twill_core::ConnId;
use twill_pop3::{Server, ServerConfig};

fn run(v: &Vector) {
    assert_eq!(v.header("compare"), Some("message"), "{}", v.name);
    let spec = v.header("maildrop").expect("maildrop header");
    let locked: Vec<&str> = v
        .header("locked")
        .map(|l| l.split(' ').collect())
        .unwrap_or_default();
    let ts = v.header("timestamp");
    let make = || {
        let cfg = ServerConfig {
            apop: ts.is_some(),
            ..ServerConfig::default()
        };
        let mut a = Auto::from_spec(cfg.clone(), spec, &locked);
        if let Some(t) = ts {
            a.server = Server::new(cfg, twill_core::rng::seeded(1)).with_timestamp(t);
        }
        a
    };
    let steps = v.client_steps().unwrap_or_else(|e| panic!("{e}"));
    let trace = assert_chunking(make, &steps);
    let (mut want, mut client) = (Vec::new(), Vec::new());
    for t in v.turns().expect("transcript") {
        if let Turn::Bytes { side, bytes, .. } = t {
            match side {
                Side::Server => want.extend_from_slice(bytes),
                Side::Client => client.extend_from_slice(bytes),
            }
        }
    }
    let got = trace.sent.get(&ConnId(1)).cloned().unwrap_or_default();
    assert_eq!(
        responses(&got, &client),
        responses(&want, &client),
        "{}: server said {}",
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
}

#[test]
fn pop3_vectors() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec-vectors/pop3");
    let vectors = load_vectors(dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(vectors.len() >= 7, "found {} vectors", vectors.len());
    for v in &vectors {
        run(v);
    }
}
