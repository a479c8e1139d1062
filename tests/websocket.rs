//! WebSocket against peers nobody here wrote: Python's `websockets`
//! (PyPI, installed by scripts/test-all.sh) as client of `twill web
//! --websocket-echo` on every driver, and as server for `twill ws`.

mod common;

use common::{args, run_python, DRIVERS};
use twill::ws::echo::start_web_echo;

#[test]
fn websockets_client_against_twill_web_echo_on_every_driver() {
    let dir = std::env::temp_dir().join(format!("twill-ws-root-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), b"hello\n").unwrap();
    for driver in DRIVERS {
        let running = start_web_echo(args(driver, &["tcp:0:interface=127.0.0.1"]), &dir, "/ws")
            .expect("start twill web --websocket-echo");
        let port = running.local_addrs()[0].socket_addr().expect("tcp").port();
        let out = run_python("websocket_clients.py", &[&port.to_string(), "/ws"]);
        assert_eq!(out.trim(), "ok", "{driver:?}");
        // The files are still served beside the endpoint.
        let got = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .arg(format!("http://127.0.0.1:{port}/hello.txt"))
            .output()
            .expect("curl");
        assert_eq!(got.stdout, b"hello\n", "{driver:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Python `websockets` server (tests/py/websocket_server.py); its port.
struct PyServer {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
    port: u16,
}

impl PyServer {
    fn start(args: &[&str]) -> PyServer {
        Self::start_script("websocket_server.py", args)
    }

    fn start_script(script: &str, args: &[&str]) -> PyServer {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(common::python());
        cmd.arg(common::py_script(script)).args(args);
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python websockets server");
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("server said {line:?}"));
        PyServer { child, out, port }
    }

    /// The server's last line ("closed CODE").
    fn finish(mut self) -> String {
        use std::io::Read;
        let mut rest = String::new();
        let _ = self.out.read_to_string(&mut rest);
        let _ = self.child.wait();
        rest
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `twill ws ARGS`, writes `input` to its stdin and closes stdin once
/// `lines` lines came out (the close handshake starts at the end of
/// stdin); (exit code, stdout, stderr).
fn twill_ws(args: &[&str], input: &str, lines: usize) -> (i32, String, String) {
    use std::io::{BufRead, Read, Write};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_twill"))
        .arg("ws")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("twill ws");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(());
        }
        all
    });
    let t = std::time::Instant::now();
    let mut seen = 0;
    while seen < lines && t.elapsed() < std::time::Duration::from_secs(20) {
        if rx
            .recv_timeout(std::time::Duration::from_millis(100))
            .is_ok()
        {
            seen += 1;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
    }
    drop(stdin);
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("twill ws {args:?} hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let code = child.wait().unwrap().code().unwrap_or(-1);
    let out = reader.join().unwrap();
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    (code, out, err)
}

/// A line long enough to be sent compressed.
const LONG: &str = "twill twill twill twill twill twill twill twill twill twill twill twill";

fn session_input() -> String {
    format!("hello\nκόσμε 𝄞\nbig\n{LONG}\n")
}

fn check_session(out: &str, path: &str, deflate: bool) {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&format!("path: {path}").as_str()),
        "{out:.300}"
    );
    assert_eq!(
        lines
            .get(1)
            .is_some_and(|l| l.contains("permessage-deflate")),
        deflate,
        "{lines:?}"
    );
    assert_eq!(lines.get(2), Some(&"echo: hello"));
    assert_eq!(lines.get(3), Some(&"echo: κόσμε 𝄞"));
    assert_eq!(lines.get(4).map(|l| l.len()), Some(200_000));
    assert_eq!(
        lines.get(5).copied(),
        Some(format!("echo: {LONG}").as_str())
    );
    assert_eq!(lines.len(), 6, "nothing else");
}

#[test]
fn twill_ws_against_a_websockets_server() {
    for deflate in [true, false] {
        let server = PyServer::start(&[]);
        let url = format!("ws://127.0.0.1:{}/chat?room=1", server.port);
        let mut args = vec![url.as_str()];
        if !deflate {
            args.push("--no-deflate");
        }
        let (code, out, err) = twill_ws(&args, &session_input(), 6);
        assert_eq!(code, 0, "{err}");
        check_session(&out, "/chat?room=1", deflate);
        // The client closed with 1000 and the server saw it.
        assert_eq!(server.finish().trim(), "closed 1000");
    }
}

#[test]
fn twill_ws_over_tls_with_ca() {
    let dir = std::env::temp_dir().join(format!("twill-wss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = twill::serve_tls::write_cert(vec!["localhost".into()], &dir).unwrap();
    let server = PyServer::start(&[&cert, &key]);
    let url = format!("wss://localhost:{}/secure", server.port);
    let (code, out, err) = twill_ws(&[&url, "--ca", &cert], &session_input(), 6);
    assert_eq!(code, 0, "{err}");
    check_session(&out, "/secure", true);
    assert_eq!(server.finish().trim(), "closed 1000");
    // Without the CA the server is not trusted: a clear failure.
    let server = PyServer::start(&[&cert, &key]);
    let url = format!("wss://localhost:{}/secure", server.port);
    let (code, _, err) = twill_ws(&[&url], "", 0);
    assert_eq!(code, 1);
    assert!(err.contains("twill ws:"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Our own Autobahn|Testsuite (which needs Python 2): a raw client sends
/// hand-made frames and checks what the server under test answers. Each
/// case names the Autobahn case it mirrors. The same suite runs against
/// `twill web --websocket-echo` and, to check the suite itself, against a
/// Python `websockets` echo server.
mod autobahn {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use twill_websocket::codec::{apply_mask, parse_header, write_header, FrameHeader, OpCode};

    const KEY: [u8; 4] = [0x9a, 0x31, 0x4c, 0xe7];

    /// One connection of the raw client.
    pub struct Peer {
        s: TcpStream,
        buf: Vec<u8>,
        /// The server agreed to permessage-deflate.
        pub deflate: bool,
        /// Inflates the server's messages (one context for the whole
        /// connection: the server may take it over).
        inflater: twill_websocket::deflate::Deflate,
    }

    /// A frame from the server.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Frame {
        pub fin: bool,
        pub rsv: u8,
        pub op: u8,
        pub data: Vec<u8>,
    }

    impl Peer {
        pub fn open(port: u16, path: &str, offer_deflate: bool) -> Peer {
            let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.set_nodelay(true).unwrap();
            let ext = if offer_deflate {
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            } else {
                ""
            };
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
            );
            let mut p = Peer {
                s,
                buf: Vec::new(),
                deflate: false,
                inflater: inflater(),
            };
            p.s.write_all(req.as_bytes()).unwrap();
            let end = loop {
                if let Some(i) = p.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                assert!(p.fill(), "no handshake response");
            };
            let head = String::from_utf8_lossy(&p.buf[..end]).into_owned();
            assert!(head.starts_with("HTTP/1.1 101"), "{head}");
            assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
            p.deflate = head.to_ascii_lowercase().contains("permessage-deflate");
            p.buf.drain(..end);
            p
        }

        fn fill(&mut self) -> bool {
            let mut b = [0u8; 65536];
            match self.s.read(&mut b) {
                Ok(0) | Err(_) => false,
                Ok(n) => {
                    self.buf.extend_from_slice(&b[..n]);
                    true
                }
            }
        }

        /// Sends a masked frame (any opcode and reserved bits).
        pub fn send(&mut self, fin: bool, rsv: u8, op: u8, payload: &[u8]) {
            let w = frame(fin, rsv, op, payload);
            self.raw(&w);
        }

        pub fn raw(&mut self, bytes: &[u8]) {
            // The server may already have closed: that is for the checks.
            let _ = self.s.write_all(bytes);
        }

        /// The next frame, or None at EOF (or after 5 s of silence).
        pub fn next(&mut self) -> Option<Frame> {
            loop {
                if let Ok(Some((h, n))) = parse_header(&self.buf) {
                    assert!(h.mask.is_none(), "a server frame was masked");
                    let len = h.len as usize;
                    if self.buf.len() >= n + len {
                        let data = self.buf[n..n + len].to_vec();
                        self.buf.drain(..n + len);
                        return Some(Frame {
                            fin: h.fin,
                            rsv: h.rsv,
                            op: h.opcode.as_u8(),
                            data,
                        });
                    }
                }
                if !self.fill() {
                    return None;
                }
            }
        }

        /// The next whole message (opcode, payload), inflated if
        /// compressed; pongs and pings are skipped.
        pub fn message(&mut self) -> Option<(u8, Vec<u8>)> {
            let mut msg: Option<(u8, bool, Vec<u8>)> = None;
            loop {
                let f = self.next()?;
                match f.op {
                    9 | 10 => continue,
                    8 => return Some((8, f.data)),
                    0 => {
                        let m = msg.as_mut().expect("continuation without a start");
                        m.2.extend_from_slice(&f.data);
                    }
                    op => msg = Some((op, f.rsv & 4 != 0, f.data)),
                }
                if f.fin {
                    let (op, z, data) = msg.take()?;
                    let data = if z { self.inflate(&data) } else { data };
                    return Some((op, data));
                }
            }
        }

        /// Expects the echo of a message.
        pub fn expect_echo(&mut self, case: &str, op: u8, payload: &[u8]) {
            let got = self.message();
            assert_eq!(got.as_ref().map(|m| m.0), Some(op), "{case}: opcode");
            assert!(got.is_some_and(|m| m.1 == payload), "{case}: payload");
        }

        /// Expects a pong with `payload`.
        pub fn expect_pong(&mut self, case: &str, payload: &[u8]) {
            let f = self.next().unwrap_or_else(|| panic!("{case}: no pong"));
            assert_eq!((f.op, f.data.as_slice()), (10, payload), "{case}");
        }

        /// Expects the server to close with one of `codes` (skipping
        /// other frames), then to close TCP.
        pub fn expect_close(&mut self, case: &str, codes: &[u16]) {
            loop {
                match self.next() {
                    Some(Frame { op: 8, data, .. }) => {
                        let code = if data.len() >= 2 {
                            u16::from_be_bytes([data[0], data[1]])
                        } else {
                            1005
                        };
                        assert!(
                            codes.contains(&code),
                            "{case}: close code {code}, wanted {codes:?}"
                        );
                        break;
                    }
                    Some(_) => {}
                    None => panic!("{case}: TCP closed (or 5 s of silence) without a close frame"),
                }
            }
            // We answer, as a client should, and the server closes TCP.
            self.send(true, 0, 8, &[]);
            let t = std::time::Instant::now();
            while self.next().is_some() {
                assert!(t.elapsed() < Duration::from_secs(5), "{case}: no TCP close");
            }
        }

        /// Our close 1000, its echo, the server's TCP close.
        pub fn close_normally(&mut self, case: &str) {
            self.send(true, 0, 8, &1000u16.to_be_bytes());
            self.expect_close(case, &[1000]);
        }
    }

    pub fn frame(fin: bool, rsv: u8, op: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = bytes::BytesMut::new();
        let h = FrameHeader {
            fin,
            rsv,
            opcode: OpCode::Binary,
            mask: Some(KEY),
            len: payload.len() as u64,
        };
        write_header(&mut b, &h);
        b[0] = (b[0] & 0xf0) | op;
        let start = b.len();
        b.extend_from_slice(payload);
        apply_mask(&mut b[start..], KEY, 0);
        b.to_vec()
    }

    fn inflater() -> twill_websocket::deflate::Deflate {
        use twill_websocket::deflate::{Deflate, DeflateConfig, DeflateParams};
        let p = DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        };
        Deflate::new(&p, false, &DeflateConfig::default())
    }

    impl Peer {
        fn inflate(&mut self, data: &[u8]) -> Vec<u8> {
            let mut out = bytes::BytesMut::new();
            let d = &mut self.inflater;
            d.inflate(data, &mut out, usize::MAX).expect("inflate");
            d.finish_message(&mut out, usize::MAX).expect("inflate");
            out.to_vec()
        }
    }

    /// Every case against the server at `port`/`path`. `strict`: UTF-8
    /// must fail fast (6.4.x); Autobahn grades a server that only fails at
    /// the end of the message "non-strict", which is what Python
    /// `websockets` does.
    pub fn run(port: u16, path: &str, strict: bool) {
        let open = || Peer::open(port, path, false);
        // 1.1.x / 1.2.x: text and binary echo at the length boundaries.
        for (i, len) in [0usize, 125, 126, 127, 128, 65535, 65536]
            .into_iter()
            .enumerate()
        {
            let mut p = open();
            let text = vec![b'*'; len];
            p.send(true, 0, 1, &text);
            p.expect_echo(&format!("1.1.{}", i + 1), 1, &text);
            let bin = vec![0xfe; len];
            p.send(true, 0, 2, &bin);
            p.expect_echo(&format!("1.2.{}", i + 1), 2, &bin);
            p.close_normally("1.x close");
        }
        // 1.1.8: 65536 bytes sent in chunks of 997.
        let mut p = open();
        let w = frame(true, 0, 1, &[b'*'; 65536]);
        for c in w.chunks(997) {
            p.raw(c);
        }
        p.expect_echo("1.1.8", 1, &[b'*'; 65536]);

        // 2.1–2.4: pings get pongs with the same payload.
        for (case, payload) in [
            ("2.1", &b""[..]),
            ("2.2", b"Hello, world!"),
            ("2.3", b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"),
            ("2.4", &[b'x'; 125]),
        ] {
            let mut p = open();
            p.send(true, 0, 9, payload);
            p.expect_pong(case, payload);
        }
        // 2.5: a ping of 126 bytes fails the connection.
        let mut p = open();
        p.send(true, 0, 9, &[b'x'; 126]);
        p.expect_close("2.5", &[1002]);
        // 2.6: a ping of 125 bytes sent byte by byte.
        let mut p = open();
        for b in frame(true, 0, 9, &[b'y'; 125]) {
            p.raw(&[b]);
        }
        p.expect_pong("2.6", &[b'y'; 125]);
        // 2.7: an unsolicited pong gets nothing; the next message still echoes.
        let mut p = open();
        p.send(true, 0, 10, b"unsolicited");
        p.send(true, 0, 1, b"after");
        p.expect_echo("2.7", 1, b"after");
        // 2.10: ten pings, ten pongs in order.
        let mut p = open();
        for i in 0..10u8 {
            p.send(true, 0, 9, &[b'p', i]);
        }
        for i in 0..10u8 {
            p.expect_pong("2.10", &[b'p', i]);
        }

        // 3.1–3.7: reserved bits with no extension fail the connection.
        for (i, (rsv, op)) in [(1u8, 1u8), (2, 1), (3, 1), (4, 1), (5, 2), (6, 9), (7, 8)]
            .into_iter()
            .enumerate()
        {
            let mut p = open();
            p.send(true, 0, 1, b"before");
            p.expect_echo(&format!("3.{}", i + 1), 1, b"before");
            p.send(true, rsv, op, b"reserved");
            p.expect_close(&format!("3.{}", i + 1), &[1002]);
        }

        // 4.1.x / 4.2.x: reserved opcodes.
        for (case, op) in [
            ("4.1.1", 3u8),
            ("4.1.2", 4),
            ("4.1.5", 7),
            ("4.2.1", 11),
            ("4.2.5", 15),
        ] {
            let mut p = open();
            p.send(true, 0, op, b"");
            p.expect_close(case, &[1002]);
        }

        // 5.1 / 5.2: fragmented ping and pong.
        for (case, op) in [("5.1", 9u8), ("5.2", 10)] {
            let mut p = open();
            p.send(false, 0, op, b"frag");
            p.send(true, 0, 0, b"ment");
            p.expect_close(case, &[1002]);
        }
        // 5.3 / 5.6: text in two fragments, with a ping between them.
        let mut p = open();
        p.send(false, 0, 1, b"frag");
        p.send(true, 0, 0, b"ment1");
        p.expect_echo("5.3", 1, b"fragment1");
        p.send(false, 0, 1, b"frag");
        p.send(true, 0, 9, b"ping");
        p.send(true, 0, 0, b"ment2");
        p.expect_pong("5.6", b"ping");
        p.expect_echo("5.6", 1, b"fragment2");
        // 5.9: a continuation with nothing to continue.
        let mut p = open();
        p.send(true, 0, 0, b"nothing");
        p.expect_close("5.9", &[1002]);
        // 5.18: a new text frame inside a fragmented message.
        let mut p = open();
        p.send(false, 0, 1, b"one");
        p.send(true, 0, 1, b"two");
        p.expect_close("5.18", &[1002]);
        // 5.19: many fragments with pings between.
        let mut p = open();
        let mut want = Vec::new();
        for i in 0..5u8 {
            let piece = [b'a' + i; 3];
            want.extend_from_slice(&piece);
            p.send(false, 0, if i == 0 { 1 } else { 0 }, &piece);
            p.send(true, 0, 9, &[i]);
        }
        p.send(true, 0, 0, b"!");
        want.push(b'!');
        for i in 0..5u8 {
            p.expect_pong("5.19", &[i]);
        }
        p.expect_echo("5.19", 1, &want);

        // 6.2.x: valid UTF-8 split anywhere.
        let text = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞".as_bytes();
        for cut in [1, 7, 17, 28] {
            let mut p = open();
            p.send(false, 0, 1, &text[..cut]);
            p.send(true, 0, 0, &text[cut..]);
            p.expect_echo("6.2.3", 1, text);
        }
        // 6.3.1 / 6.3.2: invalid UTF-8, whole and byte-wise fragmented.
        let bad =
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64";
        let mut p = open();
        p.send(true, 0, 1, bad);
        p.expect_close("6.3.1", &[1007]);
        let mut p = open();
        for (i, b) in bad.iter().enumerate() {
            p.send(i + 1 == bad.len(), 0, if i == 0 { 1 } else { 0 }, &[*b]);
        }
        p.expect_close("6.3.2", &[1007]);
        // 6.4.1: fail fast — the message is never finished.
        let mut p = open();
        p.send(false, 0, 1, "κόσμε".as_bytes());
        p.send(false, 0, 0, b"\xf4\x90\x80\x80");
        if !strict {
            p.send(true, 0, 0, b"edited");
        }
        p.expect_close("6.4.1", &[1007]);
        // 6.x: a few of the UTF-8 decoder's refusals (overlong, surrogate,
        // above U+10FFFF, lone continuation).
        for (case, s) in [
            ("6.8.1", &b"\xc0\xaf"[..]),
            ("6.9.1", b"\xed\xa0\x80"),
            ("6.7.4", b"\xf4\x90\x80\x80"),
            ("6.11.1", b"\x80"),
        ] {
            let mut p = open();
            p.send(true, 0, 1, s);
            p.expect_close(case, &[1007]);
        }

        // 7.1.1: echo, then a clean close.
        let mut p = open();
        p.send(true, 0, 1, b"Hello");
        p.expect_echo("7.1.1", 1, b"Hello");
        p.close_normally("7.1.1");
        // 7.1.3 / 7.1.4: nothing is echoed after our close.
        let mut p = open();
        p.send(true, 0, 8, &1000u16.to_be_bytes());
        p.send(true, 0, 1, b"late");
        p.expect_close("7.1.3", &[1000]);
        // 7.3.1: an empty close is answered.
        let mut p = open();
        p.send(true, 0, 8, b"");
        p.expect_close("7.3.1", &[1000, 1005]);
        // 7.3.2: a 1-byte close payload.
        let mut p = open();
        p.send(true, 0, 8, b"\x03");
        p.expect_close("7.3.2", &[1002]);
        // 7.3.3–7.3.5: code only, with a reason, with a 123-byte reason.
        for (case, reason) in [("7.3.3", 0usize), ("7.3.4", 5), ("7.3.5", 123)] {
            let mut p = open();
            let mut payload = 1000u16.to_be_bytes().to_vec();
            payload.extend(std::iter::repeat(b'r').take(reason));
            p.send(true, 0, 8, &payload);
            p.expect_close(case, &[1000]);
        }
        // 7.5.1: a close reason that is not UTF-8.
        let mut p = open();
        p.send(
            true,
            0,
            8,
            b"\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80",
        );
        p.expect_close("7.5.1", &[1002, 1007]);
        // 7.7.x: valid codes are answered normally.
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            let mut p = open();
            p.send(true, 0, 8, &code.to_be_bytes());
            p.expect_close(&format!("7.7 code {code}"), &[code, 1000]);
        }
        // 7.9.x: invalid codes fail the connection.
        for code in [0u16, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999] {
            let mut p = open();
            p.send(true, 0, 8, &code.to_be_bytes());
            p.expect_close(&format!("7.9 code {code}"), &[1002]);
        }

        // 9.x (limits): a frame announcing more than the 16 MiB both
        // servers accept is refused with 1009 at its header.
        let mut p = open();
        let mut b = bytes::BytesMut::new();
        write_header(
            &mut b,
            &FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Binary,
                mask: Some(KEY),
                len: (16 << 20) + 1,
            },
        );
        p.raw(&b);
        p.expect_close("9.x 1009", &[1009]);
        // 9.1.1-like: a 1 MiB message in 64 KiB frames echoes.
        let mut p = open();
        let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
        for (i, c) in big.chunks(65536).enumerate() {
            p.send(i == 15, 0, if i == 0 { 2 } else { 0 }, c);
        }
        p.expect_echo("9.4.x", 2, &big);

        // 12.x / 13.x: permessage-deflate (the RFC 7692 §7.2.3.1 frame,
        // masked, then a larger one); the echo is inflated if compressed.
        let mut p = Peer::open(port, path, true);
        assert!(p.deflate, "13.x: deflate negotiated");
        p.send(true, 4, 1, b"\xf2\x48\xcd\xc9\xc9\x07\x00");
        p.expect_echo("12.1.1", 1, b"Hello");
        p.send(false, 4, 1, b"\xf2\x48\xcd");
        p.send(true, 0, 0, b"\xc9\xc9\x07\x00");
        p.expect_echo("12.1.2", 1, b"Hello");
        // RSV1 on a continuation frame is an error even with deflate.
        p.send(false, 4, 1, b"\xf2\x48\xcd");
        p.send(true, 4, 0, b"\xc9\xc9\x07\x00");
        p.expect_close("13.x rsv1 on continuation", &[1002]);
        // Invalid DEFLATE data.
        let mut p = Peer::open(port, path, true);
        p.send(true, 4, 2, b"\xff\xff\xff\xff\xff");
        p.expect_close("12.x bad deflate", &[1002, 1007]);
    }
}

#[test]
fn autobahn_like_suite_against_twill() {
    let dir = std::env::temp_dir().join(format!("twill-ws-ab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for driver in [twill::cli::Driver::Tokio, twill::cli::Driver::Mio] {
        let running =
            start_web_echo(args(driver, &["tcp:0:interface=127.0.0.1"]), &dir, "/echo").unwrap();
        let port = running.local_addrs()[0].socket_addr().unwrap().port();
        autobahn::run(port, "/echo", true);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn autobahn_like_suite_against_python_websockets() {
    let server = PyServer::start(&["--echo"]);
    autobahn::run(server.port, "/", false);
}

/// permessage-deflate with small windows and no context takeover, both
/// directions, against Python's `websockets` (tests/py/websocket_windows.py):
/// its client against `twill web --websocket-echo` (twill compresses its
/// echoes within windows of 9–15 bits; 8 is agreed to and answered
/// uncompressed), and its server, which limits both windows to 9 bits and
/// turns context takeover off, against `twill ws`.
#[test]
fn deflate_small_windows_with_python_websockets() {
    let dir = std::env::temp_dir().join(format!("twill-ws-win-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let running = start_web_echo(
        args(DRIVERS[DRIVERS.len() - 1], &["tcp:0:interface=127.0.0.1"]),
        &dir,
        "/ws",
    )
    .expect("start twill web --websocket-echo");
    let port = running.local_addrs()[0].socket_addr().expect("tcp").port();
    let out = run_python(
        "websocket_windows.py",
        &["client", &port.to_string(), "/ws"],
    );
    assert_eq!(out.trim(), "ok");
    let _ = std::fs::remove_dir_all(&dir);

    let server = PyServer::start_script("websocket_windows.py", &["server"]);
    let url = format!("ws://127.0.0.1:{}/", server.port);
    let long: String = (0..40).map(|_| LONG).collect::<Vec<_>>().join(" ");
    let input = format!("{LONG}\n{long}\n{LONG}\n");
    let (code, out, err) = twill_ws(&[&url], &input, 3);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [LONG, long.as_str(), LONG],
        "{err}"
    );
    let said = server.finish();
    assert!(
        said.contains("compressed 3 of 3")
            && said.contains("server_max_window_bits=9")
            && said.contains("client_max_window_bits=9")
            && said.contains("client_no_context_takeover"),
        "{said}"
    );
}
