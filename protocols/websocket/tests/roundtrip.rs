//! Property tests: header encode → parse is the identity, and any message
//! a client machine sends (split into frames, compressed or not, cut into
//! arbitrary pieces on the wire) arrives whole at a server machine.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use twill_core::rng::seeded;
use twill_core::testing::Sim;
use twill_core::ConnId;
use twill_websocket::codec::{parse_header, write_header, FrameHeader, OpCode};
use twill_websocket::{Config, DeflateParams, Kind, Role, WebSocket, WsEvent};

const C: ConnId = ConnId(1);

fn opcode() -> impl Strategy<Value = OpCode> {
    prop_oneof![
        Just(OpCode::Continuation),
        Just(OpCode::Text),
        Just(OpCode::Binary),
        Just(OpCode::Close),
        Just(OpCode::Ping),
        Just(OpCode::Pong),
    ]
}

proptest! {
    #[test]
    fn header_round_trip(op in opcode(), fin: bool, rsv in 0u8..8, mask: Option<[u8; 4]>, len in prop_oneof![0u64..200, 60_000u64..70_000, Just(u64::MAX >> 1)]) {
        let control = op.is_control();
        let h = FrameHeader { fin: fin || control, rsv, opcode: op, mask, len: if control { len % 126 } else { len } };
        let mut b = BytesMut::new();
        write_header(&mut b, &h);
        prop_assert_eq!(parse_header(&b), Ok(Some((h, b.len()))));
    }

    #[test]
    fn messages_arrive_whole(
        msgs in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..3000), 1usize..4), 1..6),
        deflate: bool,
        cut in 1usize..2000,
    ) {
        let p = deflate.then_some(DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        });
        let mut c = Sim::new(WebSocket::new(C, Role::Client, Config::default(), p, Some(seeded(5))));
        let mut want = Vec::new();
        for (text, data, frames) in &msgs {
            let (kind, data) = if *text {
                (Kind::Text, String::from_utf8_lossy(data).into_owned().into_bytes())
            } else {
                (Kind::Binary, data.clone())
            };
            if *frames == 1 {
                c.machine.send(kind, Bytes::from(data.clone())).unwrap();
            } else {
                // Frames cut at character boundaries, as send_frame wants.
                let s = data.len() / frames;
                let mut start = 0;
                for i in 0..*frames {
                    let mut end = if i + 1 == *frames { data.len() } else { (start + s).min(data.len()) };
                    while kind == Kind::Text && std::str::from_utf8(&data[..end]).is_err() {
                        end += 1;
                    }
                    let piece = Bytes::copy_from_slice(&data[start..end]);
                    c.machine.send_frame(kind, piece, i + 1 == *frames).unwrap();
                    start = end;
                }
            }
            want.push((kind, data));
        }
        c.drain();
        let wire: Vec<u8> = c.take_outbox().into_iter().flat_map(|(_, b)| b.to_vec()).collect();
        let mut s = Sim::new(WebSocket::new(C, Role::Server, Config::default(), p, None));
        for piece in wire.chunks(cut) {
            s.data(C, piece);
        }
        let got: Vec<(Kind, Vec<u8>)> = s.events.iter().filter_map(|e| match e {
            WsEvent::Message { kind, data } => Some((*kind, data.to_vec())),
            _ => None,
        }).collect();
        prop_assert_eq!(got, want);
    }
}
