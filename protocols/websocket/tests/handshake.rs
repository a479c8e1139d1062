//! The opening handshake on twill-http heads: the server's checks (426 for
//! a wrong version), subprotocol and extension negotiation, and the
//! client's checks of the 101.

use bytes::Bytes;
use twill_core::rng::seeded;
use twill_http::codec::head::{parse_request, parse_response, HeadLimits};
use twill_websocket::handshake::{accept_key, HandshakeError};
use twill_websocket::{ClientHandshake, DeflateConfig, ServerHandshake};

fn request(extra: &str) -> twill_http::RequestHead {
    let text = format!(
        "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    parse_request(Bytes::from(text), &HeadLimits::default()).expect("valid head")
}

#[test]
fn rfc6455_1_3_server_handshake() {
    let h = ServerHandshake::from_request(&request(
        "Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n",
    ))
    .unwrap();
    assert_eq!(h.origin.as_deref(), Some("http://example.com"));
    assert_eq!(h.protocols, ["chat", "superchat"]);
    let a = h.accept(Some("chat"), None);
    assert!(a.headers.contains(&(
        "Sec-WebSocket-Accept".into(),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into()
    )));
    assert_eq!(a.protocol.as_deref(), Some("chat"));
    // A protocol the client did not offer is never chosen.
    assert_eq!(h.accept(Some("other"), None).protocol, None);
    assert!(h
        .accept(None, Some(&DeflateConfig::default()))
        .deflate
        .is_none());
}

#[test]
fn refusals() {
    let e = ServerHandshake::from_request(&request("Sec-WebSocket-Version: 8\r\n")).unwrap_err();
    assert_eq!((e.clone(), e.status()), (HandshakeError::Version, 426));
    let e = ServerHandshake::from_request(&request("")).unwrap_err();
    assert_eq!(e, HandshakeError::Version);
    let bad_key = parse_request(
        Bytes::from_static(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ),
        &HeadLimits::default(),
    )
    .unwrap();
    assert_eq!(
        ServerHandshake::from_request(&bad_key)
            .unwrap_err()
            .status(),
        400
    );
    let post = parse_request(
        Bytes::from_static(
            b"POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n",
        ),
        &HeadLimits::default(),
    )
    .unwrap();
    assert!(matches!(
        ServerHandshake::from_request(&post),
        Err(HandshakeError::NotWebSocket(_))
    ));
}

#[test]
fn client_checks_the_101() {
    let mut rng = seeded(3);
    let hs = ClientHandshake::new(&mut *rng, &["chat"], Some(DeflateConfig::default()));
    let headers = hs.headers();
    let key = &headers
        .iter()
        .find(|(n, _)| n == "Sec-WebSocket-Key")
        .unwrap()
        .1;
    assert!(headers.iter().any(|(n, v)| n == "Sec-WebSocket-Extensions"
        && v == "permessage-deflate; client_max_window_bits"));
    let resp = |extra: &str, accept: &str| {
        let t = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
        );
        parse_response(Bytes::from(t), &HeadLimits::default()).unwrap()
    };
    let good = accept_key(key);
    let n = hs
        .verify(&resp("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n", &good))
        .unwrap();
    assert_eq!(n.protocol.as_deref(), Some("chat"));
    assert!(n.deflate.is_some_and(|d| d.server_no_context_takeover));
    assert_eq!(hs.verify(&resp("", "wrong=")), Err(HandshakeError::Accept));
    assert!(matches!(
        hs.verify(&resp("Sec-WebSocket-Protocol: other\r\n", &good)),
        Err(HandshakeError::Subprotocol(_))
    ));
    assert!(matches!(
        hs.verify(&resp("Sec-WebSocket-Extensions: x-unknown\r\n", &good)),
        Err(HandshakeError::Extension(_))
    ));
    let plain = ClientHandshake::new(&mut *rng, &[], None);
    let key2 = plain
        .headers()
        .into_iter()
        .find(|(n, _)| n == "Sec-WebSocket-Key")
        .unwrap()
        .1;
    assert!(matches!(
        plain.verify(&resp(
            "Sec-WebSocket-Extensions: permessage-deflate\r\n",
            &accept_key(&key2)
        )),
        Err(HandshakeError::Extension(_))
    ));
}
