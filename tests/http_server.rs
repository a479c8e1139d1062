//! twill-http's server with the demo hello/echo handler on every driver,
//! against clients nobody here wrote: Python's `http.client`/`urllib` and
//! curl (keep-alive reuse, HEAD, 404, Content-Length and chunked uploads
//! echoed, HTTP/1.0), plus a raw socket sending three pipelined requests
//! in one write; with a machine per connection and with one machine for
//! all of them.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{args, run_python, DRIVERS};
use twill::cli::{start, Driver};
use twill_driver::{Mode, Running};
use twill_http::app::demo::Hello;
use twill_http::{App, Server, ServerConfig};

fn serve(driver: Driver, mode: Mode) -> Running<Server> {
    start(
        args(driver, &["tcp:0:interface=127.0.0.1"]),
        "tcp:0",
        mode,
        || (Server::new(ServerConfig::default()), App::new(Hello::new())),
    )
    .expect("start the hello server")
}

fn port(r: &Running<Server>) -> u16 {
    r.local_addrs()[0].socket_addr().expect("tcp").port()
}

/// Runs curl; returns stdout. curl is installed by scripts/test-all.sh;
/// its absence fails the test.
fn curl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl is missing: scripts/test-all.sh installs it");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn curl_checks(port: u16) {
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    // Two transfers on one command line: the second reuses the connection.
    let out = curl(&[
        "-w",
        "[%{http_code} %{num_connects}]",
        &url("/"),
        &url("/hello"),
    ]);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "hello, world\n[200 1]hello, world\n[200 0]"
    );
    // HEAD.
    let head = String::from_utf8(curl(&["-I", &url("/")])).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: 13\r\n"), "{head}");
    // A chunked upload of 1 MiB, echoed back chunked.
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    let file = std::env::temp_dir().join(format!("twill-http-up-{}-{port}", std::process::id()));
    std::fs::write(&file, &data).unwrap();
    let echoed = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &format!("@{}", file.display()),
        &url("/echo"),
    ]);
    assert!(echoed == data, "chunked echo: {} bytes back", echoed.len());
    // And with Content-Length and Expect: 100-continue (curl sends it for
    // large bodies and waits for the 100).
    let echoed = curl(&[
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        &format!("@{}", file.display()),
        &url("/echo"),
    ]);
    assert!(echoed == data, "expect echo: {} bytes back", echoed.len());
    let _ = std::fs::remove_file(&file);
    let code = curl(&["-o", "/dev/null", "-w", "%{http_code}", &url("/nope")]);
    assert_eq!(code, b"404");
}

/// Three requests in one write; three responses, in order.
fn pipelined(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\nsecond!\
          GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    let text = String::from_utf8(got).unwrap();
    let a = text.find("hello, world\n").expect("first");
    let b = text.find("second!").expect("second");
    let c = text.find("not found\n").expect("third");
    assert!(a < b && b < c, "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 3, "{text}");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
}

#[test]
fn real_clients_on_every_driver() {
    for driver in DRIVERS {
        let r = serve(driver, Mode::Factory);
        let p = port(&r);
        let out = run_python("http_clients.py", &[&p.to_string()]);
        assert!(out.contains("ok"), "{driver:?}: {out}");
        curl_checks(p);
        pipelined(p);
    }
}

/// One server machine for every connection (hub mode) works the same.
#[test]
fn one_machine_for_all_connections() {
    for driver in DRIVERS {
        let r = serve(driver, Mode::Hub);
        let p = port(&r);
        std::thread::scope(|s| {
            let a = s.spawn(|| run_python("http_clients.py", &[&p.to_string()]));
            let b = s.spawn(|| curl_checks(p));
            pipelined(p);
            assert!(a.join().unwrap().contains("ok"), "{driver:?}");
            b.join().unwrap();
        });
    }
}
