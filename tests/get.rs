//! `twill get` (the built binary) against Python's `http.server`, a peer
//! nobody here wrote: byte-exact downloads to stdout and with `-o`, `-I`,
//! a redirect followed, and the exit codes and one-line errors of a 404,
//! a refused connection and bad URLs; and `https://` against `twill web`
//! on an `ssl:` endpoint.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::{python, Rng};

/// `python -m http.server` on a free port, serving a temporary tree;
/// killed on drop.
struct PyServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    big: Vec<u8>,
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn py_server(tag: &str) -> PyServer {
    let dir = std::env::temp_dir().join(format!("twill-get-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("hello.txt"), b"hello world\n").unwrap();
    std::fs::write(dir.join("sub/inner.txt"), b"inner\n").unwrap();
    let big = Rng(0xb16).bytes(2 * 1024 * 1024 + 777);
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    let port = free_port();
    let child = Command::new(python())
        .args(["-m", "http.server", "--bind", "127.0.0.1"])
        .arg(port.to_string())
        .arg("--directory")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting python -m http.server");
    let server = PyServer {
        child,
        port,
        dir,
        big,
    };
    let until = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn twill_get(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twill"))
        .arg("get")
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn downloads_byte_exact() {
    let s = py_server("dl");
    let base = format!("http://127.0.0.1:{}", s.port);
    let o = twill_get(&[&format!("{base}/hello.txt")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, b"hello world\n");
    let o = twill_get(&[&format!("{base}/big.bin")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        o.stdout == s.big,
        "stdout differs ({} bytes)",
        o.stdout.len()
    );
    // -o FILE
    let out = s.dir.join("copy.bin");
    let o = twill_get(&["-o", out.to_str().unwrap(), &format!("{base}/big.bin")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    assert!(std::fs::read(&out).unwrap() == s.big, "-o file differs");
    // -H is sent (http.server ignores it, but it must not break anything).
    let o = twill_get(&["-H", "X-Test: 1", &format!("{base}/hello.txt")]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn head_only() {
    let s = py_server("head");
    let o = twill_get(&["-I", &format!("http://127.0.0.1:{}/big.bin", s.port)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    assert!(
        text.contains(&format!("Content-Length: {}\r\n", s.big.len())),
        "{text}"
    );
    assert!(
        text.ends_with("\r\n\r\n"),
        "a body followed the head: {text}"
    );
}

#[test]
fn follows_redirects_bounded() {
    let s = py_server("redir");
    // http.server answers a directory without its slash with 301.
    let url = format!("http://127.0.0.1:{}/sub", s.port);
    let o = twill_get(&[&url]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = String::from_utf8_lossy(&o.stdout);
    assert!(page.contains("inner.txt"), "{page}");
    let o = twill_get(&["--max-redirects", "0", &url]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("too many redirects"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn errors_are_one_line_with_exit_codes() {
    let s = py_server("err");
    let o = twill_get(&[&format!("http://127.0.0.1:{}/missing", s.port)]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("404"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(o.stdout.is_empty());

    let closed = free_port();
    let o = twill_get(&[&format!("http://127.0.0.1:{closed}/")]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("connection refused"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    for (url, needle) in [
        ("ftp://example.com/", "unsupported URL scheme"),
        ("http://h:99999/", "invalid port"),
        ("http:///x", "no host"),
    ] {
        let o = twill_get(&[url]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{url}: {err}");
        assert!(err.contains(needle), "{url}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn progress_bar_only_on_a_terminal() {
    let s = py_server("bar");
    let url = format!("http://127.0.0.1:{}/big.bin", s.port);
    let out = s.dir.join("bar.bin");
    // Not a terminal: nothing on stderr.
    let o = twill_get(&["-o", out.to_str().unwrap(), &url]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    // A terminal (util-linux's `script`, part of every Debian system, runs
    // the command on a pty): the bar ends at 100% with the rate.
    let cmd = format!(
        "{} get -o {} {url}",
        env!("CARGO_BIN_EXE_twill"),
        out.display()
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script (util-linux)");
    let tty = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{tty}");
    assert!(tty.contains("100% [####"), "{tty:?}");
    assert!(tty.contains(" / 2.0 MiB") && tty.contains("/s"), "{tty:?}");
    assert!(std::fs::read(&out).unwrap() == s.big);
}

#[test]
fn https_against_twill_web() {
    let s = py_server("https");
    let certs = s.dir.join("certs");
    let out = Command::new(env!("CARGO_BIN_EXE_twill"))
        .args(["cert", "--hostname", "localhost", "--out"])
        .arg(&certs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (key, cert) = (certs.join("key.pem"), certs.join("cert.pem"));
    let ep = format!(
        "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}",
        key.display(),
        cert.display()
    );
    let running = twill::cli::start_web(common::args(twill::cli::Driver::Mio, &[&ep]), &s.dir)
        .expect("twill web on ssl:");
    let port = running.local_addrs()[0].socket_addr().unwrap().port();
    let ca = cert.to_str().unwrap();
    let url = |p: &str| format!("https://localhost:{port}{p}");
    let o = twill_get(&["--ca", ca, &url("/big.bin")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        o.stdout == s.big,
        "https body differs ({} bytes)",
        o.stdout.len()
    );
    // The directory redirect stays on https.
    let o = twill_get(&["--ca", ca, &url("/sub")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("inner.txt"));
    // Not trusted (the bundled roots), or the wrong name: one line, exit 1.
    for (args, needle) in [
        (vec![url("/hello.txt")], "TLS: invalid peer certificate"),
        (
            vec![
                "--cacert".to_string(),
                ca.to_string(),
                format!("https://127.0.0.1:{port}/hello.txt"),
            ],
            "not valid for name",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = twill_get(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(needle), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(o.stdout.is_empty());
    }
    let o = twill_get(&["--cacert", "/nonexistent.pem", &url("/")]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn a_silent_server_times_out_instead_of_hanging() {
    // Accepts, reads the request, never answers.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let keep = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(8));
        drop(s);
    });
    let start = std::time::Instant::now();
    let url = format!("http://127.0.0.1:{port}/");
    let out = twill_get(&[url.as_str(), "--timeout", "1"]);
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("timeout"), "{err}");
    assert!(took < std::time::Duration::from_secs(6), "took {took:?}");
    keep.join().unwrap();
}
