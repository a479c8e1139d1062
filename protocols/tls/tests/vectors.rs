//! Runs `spec-vectors/tls/` against a server-mode `Tls<Echo>`: what RFC
//! 8446 says a server answers to records it must refuse, whole, byte at a
//! time and in random splits.
//!
//! The vectors say what the RFC requires. Where rustls answers with a
//! different alert, [`DEVIATIONS`] records exactly what it sends instead,
//! and the test checks both that the answer is still a fatal alert and a
//! close, and that it still differs — so a rustls that comes into line
//! fails here and the entry is deleted.

use twill_basic::Echo;
use twill_core::testing::{assert_chunking, load_vectors};
use twill_tls::{ServerSetup, Tls, TlsContext};

fn server_ctx() -> TlsContext {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let setup = ServerSetup::from_pem(
        c.cert.pem().as_bytes(),
        c.key_pair.serialize_pem().as_bytes(),
    )
    .expect("setup");
    TlsContext::new().with_server(&setup).expect("context")
}

/// (vector file, what rustls sends instead of the RFC's alert).
const DEVIATIONS: &[(&str, &[u8])] = &[
    // decode_error (50) where §5 asks for unexpected_message (10).
    (
        "unknown-record-type.txt",
        &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 50],
    ),
    // decode_error (50) where §5.1 asks for record_overflow (22).
    (
        "record-overflow.txt",
        &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 50],
    ),
];

#[test]
fn every_tls_vector() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec-vectors/tls");
    let vectors = load_vectors(dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(!vectors.is_empty(), "no vectors in {dir}");
    let ctx = server_ctx();
    for v in &vectors {
        assert_eq!(v.header("protocol"), Some("tls-server"), "{}", v.name);
        let steps = v.client_steps().unwrap_or_else(|e| panic!("{e}"));
        let trace = assert_chunking(|| Tls::server(Echo::new(), &ctx), &steps);
        let file = v.name.rsplit('/').next().unwrap_or(&v.name);
        match DEVIATIONS.iter().find(|(f, _)| *f == file) {
            None => v
                .check_server(&trace.sent, &trace.closes)
                .unwrap_or_else(|e| panic!("{e} ({})", v.source)),
            Some((_, sends)) => {
                let conn = twill_core::ConnId(1);
                assert_eq!(
                    trace.sent.get(&conn).map(Vec::as_slice),
                    Some(*sends),
                    "{file}"
                );
                assert_eq!(
                    trace.closes,
                    vec![(conn, twill_core::Close::Graceful)],
                    "{file}"
                );
                assert!(
                    v.check_server(&trace.sent, &trace.closes).is_err(),
                    "{file}: rustls now follows the RFC; delete its DEVIATIONS entry"
                );
            }
        }
    }
}
