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
    fn start(tls: Option<(&std::path::Path, &std::path::Path)>) -> PyServer {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(common::python());
        cmd.arg(common::py_script("websocket_server.py"));
        if let Some((c, k)) = tls {
            cmd.arg(c).arg(k);
        }
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
    assert_eq!(lines.len(), 5, "nothing else");
}

#[test]
fn twill_ws_against_a_websockets_server() {
    for deflate in [true, false] {
        let server = PyServer::start(None);
        let url = format!("ws://127.0.0.1:{}/chat?room=1", server.port);
        let mut args = vec![url.as_str()];
        if !deflate {
            args.push("--no-deflate");
        }
        let (code, out, err) = twill_ws(&args, "hello\nκόσμε 𝄞\nbig\n", 5);
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
    let server = PyServer::start(Some((cert.as_ref(), key.as_ref())));
    let url = format!("wss://localhost:{}/secure", server.port);
    let (code, out, err) = twill_ws(&[&url, "--ca", &cert], "hello\nκόσμε 𝄞\nbig\n", 5);
    assert_eq!(code, 0, "{err}");
    check_session(&out, "/secure", true);
    assert_eq!(server.finish().trim(), "closed 1000");
    // Without the CA the server is not trusted: a clear failure.
    let server = PyServer::start(Some((cert.as_ref(), key.as_ref())));
    let url = format!("wss://localhost:{}/secure", server.port);
    let (code, _, err) = twill_ws(&[&url], "", 0);
    assert_eq!(code, 1);
    assert!(err.contains("twill ws:"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
