//! Runs `spec-vectors/websocket/` through the connection machine: each
//! case whole, byte at a time and in pieces of 3 and 7 bytes, must give
//! the listed events (and, for an error, a close frame with the named
//! code). Also checks the encoder reproduces the RFC 6455 §5.7 frames.

use bytes::{Bytes, BytesMut};
use twill_core::rng::seeded;
use twill_core::testing::{load_vectors, Outcome, Sim, Vector};
use twill_core::ConnId;
use twill_websocket::codec::{apply_mask, write_header, FrameHeader, OpCode};
use twill_websocket::{Config, DeflateParams, Kind, Role, WebSocket, WsEvent};

const C: ConnId = ConnId(1);

fn vectors() -> Vec<Vector> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec-vectors/websocket");
    let v = load_vectors(dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(v.len() >= 3, "the websocket vectors are missing");
    v
}

fn canon(e: &WsEvent) -> Option<Vec<u8>> {
    let (tag, data): (&str, &[u8]) = match e {
        WsEvent::Message {
            kind: Kind::Text,
            data,
        } => ("text:", data),
        WsEvent::Message {
            kind: Kind::Binary,
            data,
        } => ("binary:", data),
        WsEvent::Ping(p) => ("ping:", p),
        WsEvent::Pong(p) => ("pong:", p),
        WsEvent::CloseReceived { code, reason } => {
            let mut s = format!("close:{}", code.map_or(1005, |c| c.0));
            if !reason.is_empty() {
                s.push(' ');
                s.push_str(reason);
            }
            return Some(s.into_bytes());
        }
        _ => return None,
    };
    let mut v = tag.as_bytes().to_vec();
    v.extend_from_slice(data);
    Some(v)
}

#[test]
fn spec_vectors() {
    let mut cases = 0;
    for v in vectors() {
        let role = match v.header("from") {
            Some("server") => Role::Client,
            Some("client") => Role::Server,
            other => panic!("{}: # from: {other:?}", v.name),
        };
        let deflate = (v.header("deflate") == Some("yes")).then_some(DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        });
        for case in v.cases().expect("message vectors") {
            cases += 1;
            for step in [usize::MAX, 1, 3, 7] {
                let where_ = format!("{}:{} (pieces of {step})", v.name, case.line);
                let mut sim = Sim::new(WebSocket::new(
                    C,
                    role,
                    Config::default(),
                    deflate,
                    Some(seeded(1)),
                ));
                for piece in case.input.chunks(step.min(case.input.len().max(1))) {
                    sim.data(C, piece);
                }
                let got: Vec<Vec<u8>> = sim.events.iter().filter_map(canon).collect();
                assert_eq!(got, case.expect, "{where_}");
                let violation = sim.events.iter().find_map(|e| match e {
                    WsEvent::Violation(v) => Some(v.close_code().0),
                    _ => None,
                });
                match &case.outcome {
                    Outcome::Error(kind) => {
                        let want = match kind.as_str() {
                            "protocol-error" => 1002,
                            "invalid-data" => 1007,
                            "too-big" => 1009,
                            k => panic!("{where_}: unknown error kind {k}"),
                        };
                        assert_eq!(violation, Some(want), "{where_}");
                    }
                    Outcome::Complete | Outcome::Pending => assert_eq!(violation, None, "{where_}"),
                }
            }
        }
    }
    assert!(cases >= 20, "{cases} cases");
}

fn server_sends(f: impl FnOnce(&mut WebSocket)) -> Vec<u8> {
    let mut sim = Sim::new(WebSocket::new(
        C,
        Role::Server,
        Config::default(),
        None,
        None,
    ));
    f(&mut sim.machine);
    sim.drain();
    sim.sent.remove(&C).unwrap_or_default()
}

#[test]
fn encoder_reproduces_rfc6455_5_7() {
    assert_eq!(
        server_sends(|w| w.send_text("Hello").unwrap()),
        b"\x81\x05Hello"
    );
    assert_eq!(
        server_sends(|w| w.ping(b"Hello").unwrap()),
        b"\x89\x05Hello"
    );
    let b256: Vec<u8> = (0..=255).collect();
    let got = server_sends(|w| w.send(Kind::Binary, Bytes::from(b256.clone())).unwrap());
    assert_eq!(&got[..4], b"\x82\x7e\x01\x00");
    assert_eq!(&got[4..], &b256[..]);
    let got = server_sends(|w| w.send(Kind::Binary, Bytes::from(vec![0u8; 65536])).unwrap());
    assert_eq!(&got[..10], b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00");
    assert_eq!(got.len(), 10 + 65536);
    let got = server_sends(|w| {
        w.send_frame(Kind::Text, Bytes::from_static(b"Hel"), false)
            .unwrap();
        w.send_frame(Kind::Text, Bytes::from_static(b"lo"), true)
            .unwrap();
    });
    assert_eq!(got, b"\x01\x03Hel\x80\x02lo");
    // The masked example, with the RFC's key.
    let mut b = BytesMut::new();
    let key = [0x37, 0xfa, 0x21, 0x3d];
    write_header(
        &mut b,
        &FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Text,
            mask: Some(key),
            len: 5,
        },
    );
    let start = b.len();
    b.extend_from_slice(b"Hello");
    apply_mask(&mut b[start..], key, 0);
    assert_eq!(&b[..], b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
}

#[test]
fn the_64k_example_decodes() {
    // RFC 6455 §5.7: 64 KiB binary message in a single unmasked frame.
    let mut wire = b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00".to_vec();
    wire.extend((0..65536u32).map(|i| i as u8));
    let mut sim = Sim::new(WebSocket::new(
        C,
        Role::Client,
        Config::default(),
        None,
        Some(seeded(1)),
    ));
    sim.data(C, &wire);
    match sim.events.as_slice() {
        [WsEvent::Message {
            kind: Kind::Binary,
            data,
        }] => assert_eq!(&data[..], &wire[10..]),
        e => panic!("{e:?}"),
    }
}
