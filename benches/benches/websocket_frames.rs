//! WebSocket frame parse + unmask throughput: the same masked client
//! frames (binary, so no UTF-8 check anywhere) read by a server-role
//! twill-websocket machine, tungstenite's `WebSocket` and fastwebsockets'
//! `WebSocket`, for 20-byte and 16 KiB messages, in the same run.
//!
//! Run: `cd benches && cargo bench --bench websocket_frames && python3 report.py ws_frames_20B ws_frames_16KiB`

use std::hint::black_box;
use std::io::{Cursor, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use twill_core::{ConnId, Input, Machine, Now, Output};
use twill_websocket::codec::{apply_mask, write_header, FrameHeader, OpCode};
use twill_websocket::{Config, Role, WebSocket, WsEvent};

/// `count` masked binary frames of `size` bytes, as a client sends them.
fn wire(size: usize, count: usize) -> Vec<u8> {
    let mut b = BytesMut::new();
    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    for i in 0..count {
        let key = (i as u32).wrapping_mul(2_654_435_761).to_be_bytes();
        let h = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            mask: Some(key),
            len: size as u64,
        };
        write_header(&mut b, &h);
        let start = b.len();
        b.extend_from_slice(&payload);
        apply_mask(&mut b[start..], key, 0);
    }
    b.to_vec()
}

/// An in-memory stream: reads the wire, discards writes.
struct Io(Cursor<Vec<u8>>);

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Io {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl tokio::io::AsyncRead for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.0.read(buf.initialize_unfilled())?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn group(c: &mut Criterion, name: &str, size: usize, count: usize) {
    let w = wire(size, count);
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(w.len() as u64));

    g.bench_function("tungstenite", |b| {
        b.iter(|| {
            let mut ws = tungstenite::WebSocket::from_raw_socket(
                Io(Cursor::new(w.clone())),
                tungstenite::protocol::Role::Server,
                None,
            );
            let mut n = 0;
            while n < count {
                if let Ok(m) = ws.read() {
                    black_box(m);
                    n += 1;
                } else {
                    break;
                }
            }
            assert_eq!(n, count);
        })
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    g.bench_function("fastwebsockets", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut ws = fastwebsockets::WebSocket::after_handshake(
                    Io(Cursor::new(w.clone())),
                    fastwebsockets::Role::Server,
                );
                ws.set_auto_close(false);
                ws.set_auto_pong(false);
                ws.set_max_message_size(64 << 20);
                for _ in 0..count {
                    let f = ws.read_frame().await.unwrap();
                    black_box(&f.payload);
                }
            })
        })
    });

    // The same clone of the wire as the peers pay for, so the input side
    // costs the same.
    g.bench_function("twill", |b| {
        b.iter(|| {
            let input = w.clone();
            let conn = ConnId(1);
            let mut m = WebSocket::new(conn, Role::Server, Config::default(), None, None);
            let mut n = 0;
            for chunk in input.chunks(64 * 1024) {
                let _ = m.handle_input(Now::default(), Input::Data { conn, bytes: chunk });
                loop {
                    match m.poll_output() {
                        Output::Wait { .. } => break,
                        Output::Event(WsEvent::Message { data, .. }) => {
                            black_box(data);
                            n += 1;
                        }
                        _ => {}
                    }
                }
            }
            assert_eq!(n, count);
        })
    });
    g.finish();
}

fn ws_frames(c: &mut Criterion) {
    group(c, "ws_frames_20B", 20, 10_000);
    group(c, "ws_frames_16KiB", 16 * 1024, 64);
}

criterion_group!(benches, ws_frames);
criterion_main!(benches);
