//! The connection machine in both roles under the simulated driver: the
//! framing rules, fragmentation with interleaved control frames,
//! incremental UTF-8, limits (1009), the close handshake and its timeout,
//! keep-alive, streaming, backpressure and permessage-deflate.

use bytes::{Bytes, BytesMut};
use twill_core::rng::seeded;
use twill_core::testing::Sim;
use twill_core::{Close, ConnId, Duration};
use twill_websocket::codec::{apply_mask, write_header, FrameHeader, OpCode};
use twill_websocket::{
    CloseCode, Config, DeflateParams, Kind, ProtocolError, Role, WebSocket, WsEvent,
};

const C: ConnId = ConnId(1);

fn machine(role: Role, cfg: Config, deflate: Option<DeflateParams>) -> Sim<WebSocket> {
    Sim::new(WebSocket::new(C, role, cfg, deflate, Some(seeded(7))))
}

fn server() -> Sim<WebSocket> {
    machine(Role::Server, Config::default(), None)
}

/// A frame as a client sends it (masked with a fixed key).
fn cframe(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    raw(fin, 0, op, payload, Some([0x37, 0xfa, 0x21, 0x3d]))
}

fn raw(fin: bool, rsv: u8, op: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut b = BytesMut::new();
    let opcode = OpCode::from_u8(op).unwrap_or(OpCode::Binary);
    write_header(
        &mut b,
        &FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            len: payload.len() as u64,
        },
    );
    // Reserved opcodes are written by patching the first byte.
    b[0] = (b[0] & 0xf0) | op;
    let start = b.len();
    b.extend_from_slice(payload);
    if let Some(k) = mask {
        apply_mask(&mut b[start..], k, 0);
    }
    b.to_vec()
}

fn messages(s: &Sim<WebSocket>) -> Vec<(Kind, Vec<u8>)> {
    s.events
        .iter()
        .filter_map(|e| match e {
            WsEvent::Message { kind, data } => Some((*kind, data.to_vec())),
            _ => None,
        })
        .collect()
}

fn violation(s: &Sim<WebSocket>) -> Option<ProtocolError> {
    s.events.iter().find_map(|e| match e {
        WsEvent::Violation(v) => Some(v.clone()),
        _ => None,
    })
}

/// The close code of the last close frame the server sent (unmasked).
fn sent_close_code(s: &Sim<WebSocket>) -> Option<u16> {
    let wire = s.sent.get(&C)?;
    let mut i = 0;
    let mut last = None;
    while i + 2 <= wire.len() {
        let (op, len) = (wire[i] & 0x0f, usize::from(wire[i + 1] & 0x7f));
        let (hl, len) = match len {
            126 => (
                4,
                usize::from(u16::from_be_bytes([wire[i + 2], wire[i + 3]])),
            ),
            127 => (
                10,
                u64::from_be_bytes(wire[i + 2..i + 10].try_into().ok()?) as usize,
            ),
            n => (2, n),
        };
        if op == 8 {
            last = Some(if len >= 2 {
                u16::from_be_bytes([wire[i + hl], wire[i + hl + 1]])
            } else {
                1005
            });
        }
        i += hl + len;
    }
    last
}

#[test]
fn server_reads_masked_text_and_answers_unmasked() {
    let mut s = server();
    s.data(C, &cframe(true, 1, b"Hello"));
    assert_eq!(messages(&s), vec![(Kind::Text, b"Hello".to_vec())]);
    s.machine.send_text("Hello").unwrap();
    s.drain();
    // RFC 6455 §5.7: a single-frame unmasked text message.
    assert_eq!(s.sent[&C], b"\x81\x05Hello");
}

#[test]
fn fragments_with_interleaved_ping_autobahn_5_6() {
    let mut s = server();
    let mut wire = cframe(false, 1, b"fragment1");
    wire.extend(cframe(true, 9, b"ping payload"));
    wire.extend(cframe(true, 0, b"fragment2"));
    for b in &wire {
        s.data(C, std::slice::from_ref(b));
    }
    assert_eq!(
        messages(&s),
        vec![(Kind::Text, b"fragment1fragment2".to_vec())]
    );
    assert!(s
        .events
        .contains(&WsEvent::Ping(Bytes::from_static(b"ping payload"))));
    assert_eq!(s.sent[&C], b"\x8a\x0cping payload", "auto pong, unmasked");
}

#[test]
fn server_rejects_unmasked_and_client_rejects_masked() {
    let mut s = server();
    s.data(C, &raw(true, 0, 1, b"hi", None));
    assert_eq!(violation(&s), Some(ProtocolError::Unmasked));
    assert_eq!(sent_close_code(&s), Some(1002));
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);

    let mut c = machine(Role::Client, Config::default(), None);
    c.data(C, &cframe(true, 1, b"hi"));
    assert_eq!(violation(&c), Some(ProtocolError::Masked));
}

#[test]
fn reserved_bits_and_opcodes_autobahn_3_and_4() {
    for (rsv, op) in [
        (1u8, 1u8),
        (2, 2),
        (4, 1),
        (7, 9),
        (0, 3),
        (0, 7),
        (0, 0xb),
        (0, 0xf),
    ] {
        let mut s = server();
        s.data(C, &raw(true, rsv, op, b"x", Some([1, 2, 3, 4])));
        assert_eq!(sent_close_code(&s), Some(1002), "rsv {rsv} op {op}");
        assert!(messages(&s).is_empty());
    }
}

#[test]
fn control_frame_rules_autobahn_2_5_and_5_1() {
    let mut s = server();
    s.data(C, &cframe(true, 9, &[b'a'; 126]));
    assert_eq!(violation(&s), Some(ProtocolError::ControlTooLong));
    let mut s = server();
    s.data(C, &cframe(false, 9, b"x"));
    assert_eq!(violation(&s), Some(ProtocolError::FragmentedControl));
    let mut s = server();
    s.data(C, &cframe(true, 0, b"x"));
    assert_eq!(violation(&s), Some(ProtocolError::UnexpectedContinuation));
    let mut s = server();
    let mut w = cframe(false, 1, b"a");
    w.extend(cframe(true, 1, b"b"));
    s.data(C, &w);
    assert_eq!(violation(&s), Some(ProtocolError::ExpectedContinuation));
}

#[test]
fn utf8_fails_at_the_first_bad_fragment_autobahn_6_4_1() {
    let mut s = server();
    s.data(C, &cframe(false, 1, "κόσμε".as_bytes()));
    assert!(violation(&s).is_none());
    // The bad bytes come in a non-final fragment: fail now, not at FIN.
    s.data(C, &cframe(false, 0, b"\xf4\x90\x80\x80"));
    assert_eq!(violation(&s), Some(ProtocolError::InvalidUtf8));
    assert_eq!(sent_close_code(&s), Some(1007));
}

#[test]
fn utf8_cut_inside_a_character_is_fine_until_fin() {
    let mut s = server();
    let t = "𝄞".as_bytes();
    s.data(C, &cframe(false, 1, &t[..1]));
    s.data(C, &cframe(false, 0, &t[1..3]));
    s.data(C, &cframe(true, 0, &t[3..]));
    assert_eq!(messages(&s), vec![(Kind::Text, t.to_vec())]);
    let mut s = server();
    s.data(C, &cframe(true, 1, &t[..2]));
    assert_eq!(violation(&s), Some(ProtocolError::InvalidUtf8));
}

#[test]
fn limits_close_with_1009() {
    let cfg = Config {
        max_frame: 100,
        max_message: 150,
        ..Config::default()
    };
    let mut s = machine(Role::Server, cfg.clone(), None);
    // Refused at the header, before the payload arrives.
    s.data(C, &cframe(true, 2, &[0; 101])[..8]);
    assert!(matches!(
        violation(&s),
        Some(ProtocolError::FrameTooBig { len: 101, max: 100 })
    ));
    assert_eq!(sent_close_code(&s), Some(1009));
    let mut s = machine(Role::Server, cfg, None);
    s.data(C, &cframe(false, 2, &[0; 100]));
    s.data(C, &cframe(true, 0, &[0; 60]));
    assert_eq!(
        violation(&s),
        Some(ProtocolError::MessageTooBig { max: 150 })
    );
    assert_eq!(sent_close_code(&s), Some(1009));
}

#[test]
fn close_handshake_server_side_autobahn_7_1() {
    let mut s = server();
    s.data(C, &cframe(true, 8, b"\x03\xe8bye"));
    assert!(s.events.contains(&WsEvent::CloseReceived {
        code: Some(CloseCode(1000)),
        reason: "bye".into()
    }));
    // Echo the code, then the server closes TCP first.
    assert_eq!(s.sent[&C], b"\x88\x02\x03\xe8");
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);
    assert_eq!(
        s.events.last(),
        Some(&WsEvent::Closed {
            code: CloseCode(1000),
            reason: "bye".into(),
            clean: true
        })
    );
    // Nothing after the close is read.
    s.data(C, &cframe(true, 1, b"late"));
    assert!(messages(&s).is_empty());
}

#[test]
fn close_codes_autobahn_7_3_and_7_9() {
    for (payload, want) in [
        (&b""[..], 1005u16),
        (b"\x03\xe8", 1000),
        (b"\x0f\xa0", 4000),
    ] {
        let mut s = server();
        s.data(C, &cframe(true, 8, payload));
        assert_eq!(sent_close_code(&s), Some(want), "{payload:x?}");
        assert!(violation(&s).is_none());
    }
    for payload in [
        &b"\x03"[..],
        b"\x03\xed",
        b"\x03\xee",
        b"\x03\xf7",
        b"\x00\x00",
        b"\x03\xe8\xff",
    ] {
        let mut s = server();
        s.data(C, &cframe(true, 8, payload));
        assert!(violation(&s).is_some(), "{payload:x?}");
        let want = if payload.len() > 2 { 1007 } else { 1002 };
        assert_eq!(sent_close_code(&s), Some(want), "{payload:x?}");
    }
}

#[test]
fn client_close_waits_for_the_server_then_times_out() {
    let mut c = machine(Role::Client, Config::default(), None);
    c.machine.close(CloseCode::NORMAL, "done").unwrap();
    c.drain();
    assert!(c.machine.send_text("x").is_err());
    assert!(c.closes.is_empty());
    c.advance(Duration::from_secs(6));
    assert_eq!(c.closes, vec![(C, Close::Abort)]);
    assert!(matches!(
        c.events.last(),
        Some(WsEvent::Closed {
            code: CloseCode(1006),
            clean: false,
            ..
        })
    ));
}

#[test]
fn client_close_handshake_then_server_eof() {
    let mut c = machine(Role::Client, Config::default(), None);
    c.machine.close(CloseCode::NORMAL, "").unwrap();
    c.drain();
    c.data(C, b"\x88\x02\x03\xe8");
    // The client waits for the server's TCP close.
    assert!(c.closes.is_empty());
    c.eof(C);
    assert_eq!(c.closes, vec![(C, Close::Graceful)]);
    assert_eq!(
        c.events.last(),
        Some(&WsEvent::Closed {
            code: CloseCode(1000),
            reason: String::new(),
            clean: true
        })
    );
    // The close frame the client sent was masked.
    assert_eq!(c.sent[&C][1], 0x82);
}

#[test]
fn eof_without_close_is_1006() {
    let mut s = server();
    s.eof(C);
    assert!(matches!(
        s.events.last(),
        Some(WsEvent::Closed {
            code: CloseCode(1006),
            clean: false,
            ..
        })
    ));
}

#[test]
fn keepalive_ping_then_failure() {
    let cfg = Config {
        keepalive: Some(Duration::from_secs(10)),
        keepalive_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    let mut s = machine(Role::Server, cfg, None);
    s.data(C, &cframe(true, 1, b"hi"));
    s.advance(Duration::from_secs(10));
    assert!(s.sent[&C].ends_with(b"\x89\x05twill"), "a ping went out");
    // An answer resets the timer.
    s.data(C, &cframe(true, 10, b"twill"));
    s.advance(Duration::from_secs(9));
    assert!(violation(&s).is_none());
    s.advance(Duration::from_secs(1 + 5));
    assert_eq!(violation(&s), Some(ProtocolError::KeepaliveTimeout));
    assert_eq!(sent_close_code(&s), Some(1011));
}

#[test]
fn streaming_delivers_pieces() {
    let cfg = Config {
        streaming: true,
        max_message: 10,
        ..Config::default()
    };
    let mut s = machine(Role::Server, cfg, None);
    s.data(C, &cframe(false, 2, &[1; 8]));
    let w = cframe(true, 0, &[2; 8]);
    s.data(C, &w[..10]);
    s.data(C, &w[10..]);
    let chunks: Vec<_> = s
        .events
        .iter()
        .filter_map(|e| match e {
            WsEvent::Chunk {
                data, first, last, ..
            } => Some((data.len(), *first, *last)),
            _ => None,
        })
        .collect();
    assert_eq!(chunks[0], (8, true, false));
    // max_message still counts the whole message.
    assert_eq!(
        violation(&s),
        Some(ProtocolError::MessageTooBig { max: 10 })
    );
}

#[test]
fn backpressure_pauses_reading() {
    let cfg = Config {
        output: twill_core::OutputBudget::new(100, 10),
        ..Config::default()
    };
    let mut s = machine(Role::Server, cfg, None);
    s.auto_sent = false;
    s.machine
        .send(Kind::Binary, Bytes::from(vec![0; 200]))
        .unwrap();
    s.drain();
    let w = cframe(true, 1, b"held");
    s.data(C, &w);
    assert!(messages(&s).is_empty());
    assert_eq!(s.held(C), w.len());
    s.ack(C);
    assert!(s.events.contains(&WsEvent::Writable));
    assert_eq!(messages(&s), vec![(Kind::Text, b"held".to_vec())]);
}

/// Moves what each side sent to the other.
fn pump(a: &mut Sim<WebSocket>, b: &mut Sim<WebSocket>) {
    loop {
        let ab = a.take_outbox();
        let ba = b.take_outbox();
        if ab.is_empty() && ba.is_empty() {
            break;
        }
        for (_, x) in ab {
            b.data(C, &x);
        }
        for (_, x) in ba {
            a.data(C, &x);
        }
    }
}

#[test]
fn client_and_server_with_deflate_and_both_context_modes() {
    for (snct, cnct) in [(false, false), (true, true), (true, false)] {
        let p = DeflateParams {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        };
        let mut c = machine(Role::Client, Config::default(), Some(p));
        let mut s = machine(Role::Server, Config::default(), Some(p));
        let text = "twill ".repeat(2000);
        for _ in 0..3 {
            c.machine.send_text(&text).unwrap();
            c.drain();
            let on_wire = c.outbox.iter().map(|(_, b)| b.len()).sum::<usize>();
            assert!(on_wire < 500, "compressed: {on_wire}");
            pump(&mut c, &mut s);
        }
        let got = messages(&s);
        assert_eq!(got.len(), 3);
        assert!(got
            .iter()
            .all(|(k, d)| *k == Kind::Text && d == text.as_bytes()));
        for (_, d) in got {
            s.machine.send(Kind::Binary, Bytes::from(d)).unwrap();
        }
        s.drain();
        pump(&mut c, &mut s);
        assert_eq!(messages(&c).len(), 3);
    }
}

#[test]
fn deflate_bomb_is_1009() {
    let p = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    let mut c = machine(Role::Client, Config::default(), Some(p));
    let cfg = Config {
        max_message: 1 << 20,
        ..Config::default()
    };
    let mut s = machine(Role::Server, cfg, Some(p));
    c.machine
        .send(Kind::Binary, Bytes::from(vec![0u8; 8 << 20]))
        .unwrap();
    c.drain();
    pump(&mut c, &mut s);
    assert_eq!(
        violation(&s),
        Some(ProtocolError::MessageTooBig { max: 1 << 20 })
    );
    assert_eq!(sent_close_code(&s), Some(1009));
}

#[test]
fn chunking_never_matters() {
    let mut wire = cframe(false, 1, "héllo ".as_bytes());
    wire.extend(cframe(true, 9, b"p"));
    wire.extend(cframe(true, 0, &[b'w'; 300]));
    wire.extend(cframe(true, 2, &[7; 70_000]));
    wire.extend(cframe(true, 8, b"\x03\xe8"));
    let mut whole = server();
    whole.data(C, &wire);
    for step in [1, 2, 3, 13, 4096] {
        let mut s = server();
        for piece in wire.chunks(step) {
            s.data(C, piece);
        }
        assert_eq!(s.events, whole.events, "pieces of {step}");
        assert_eq!(s.sent, whole.sent);
    }
    assert_eq!(messages(&whole).len(), 2);
}
