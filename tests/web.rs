//! `twill web` against real clients nobody here wrote — curl and Python's
//! `http.client`/`urllib` — on every driver: keep-alive reuse, Range/206/
//! 416, conditional 304, HEAD, 404/405, traversal attempts refused, and a
//! multi-MB file byte-exact (sent with sendfile, and streamed in chunks
//! through the pool when file payloads are off, as behind `ssl:`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{args, run_python, Rng, DRIVERS};
use twill::cli::{start, start_web, Driver};
use twill::web::service::Web;
use twill_driver::{Mode, Running};
use twill_http::{Server, ServerConfig};

/// A served tree: `dir/root` is the root, `dir/secret` is outside it.
struct Tree {
    dir: PathBuf,
    root: PathBuf,
    big: Vec<u8>,
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tree(tag: &str) -> Tree {
    let dir = std::env::temp_dir().join(format!("twill-web-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("site")).unwrap();
    std::fs::write(root.join("hello.txt"), b"hello world\n").unwrap();
    std::fs::write(root.join("site/index.html"), b"<p>home</p>\n").unwrap();
    std::fs::write(root.join("sub/a b.txt"), b"spaced\n").unwrap();
    let big = Rng(0x5eed).bytes(3 * 1024 * 1024 + 12_345);
    std::fs::write(root.join("big.bin"), &big).unwrap();
    std::fs::write(dir.join("secret"), b"TOP SECRET\n").unwrap();
    std::os::unix::fs::symlink(dir.join("secret"), root.join("leak")).unwrap();
    Tree { dir, root, big }
}

fn port(r: &Running<Server>) -> u16 {
    r.local_addrs()[0].socket_addr().expect("tcp").port()
}

fn serve(driver: Driver, root: &Path) -> Running<Server> {
    start_web(args(driver, &["tcp:0:interface=127.0.0.1"]), root).expect("start twill web")
}

/// Like `twill web` but reading files in chunks on the pool instead of
/// sendfile.
fn serve_streaming(driver: Driver, root: &Path) -> Running<Server> {
    let web = Web::new(root, false).unwrap();
    let cfg = ServerConfig {
        file_payloads: false,
        ..ServerConfig::default()
    };
    start(
        args(driver, &["tcp:0:interface=127.0.0.1"]),
        "tcp:0",
        Mode::Factory,
        move || (Server::new(cfg.clone()), web.clone()),
    )
    .expect("start")
}

/// Runs curl; returns (stdout bytes, stderr).
fn curl(args: &[&str]) -> (Vec<u8>, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl is installed by scripts/test-all.sh");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "curl {args:?}: {err}");
    (out.stdout, err)
}

fn curl_text(args: &[&str]) -> String {
    String::from_utf8(curl(args).0).unwrap()
}

fn curl_checks(t: &Tree, port: u16) {
    let base = format!("http://127.0.0.1:{port}");
    let url = |p: &str| format!("{base}{p}");
    // Two URLs on one command line share one connection.
    let (out, err) = curl(&["-v", &url("/hello.txt"), &url("/site/")]);
    assert_eq!(out, b"hello world\n<p>home</p>\n");
    assert!(err.contains("Re-using existing connection"), "{err}");
    // Range, 416.
    let out = curl_text(&["-i", "-r", "0-4", &url("/hello.txt")]);
    assert!(out.starts_with("HTTP/1.1 206"), "{out}");
    assert!(out.contains("Content-Range: bytes 0-4/12"), "{out}");
    assert!(out.ends_with("\r\n\r\nhello"), "{out}");
    let out = curl_text(&["-i", "-r", "100-200", &url("/hello.txt")]);
    assert!(out.starts_with("HTTP/1.1 416"), "{out}");
    assert!(out.contains("Content-Range: bytes */12"), "{out}");
    // HEAD.
    let out = curl_text(&["-I", &url("/big.bin")]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.contains(&format!("Content-Length: {}", t.big.len())),
        "{out}"
    );
    assert!(
        out.contains("Content-Type: application/octet-stream"),
        "{out}"
    );
    // Conditional: the ETag of a first answer gives 304.
    let etag = out
        .lines()
        .find_map(|l| l.strip_prefix("ETag: "))
        .expect("ETag")
        .to_string();
    let out = curl_text(&[
        "-i",
        "-H",
        &format!("If-None-Match: {etag}"),
        &url("/big.bin"),
    ]);
    assert!(out.starts_with("HTTP/1.1 304"), "{out}");
    assert!(out.ends_with("\r\n\r\n"), "a 304 has no body: {out}");
    // 404, 405.
    let code = curl_text(&["-o", "/dev/null", "-w", "%{http_code}", &url("/nope")]);
    assert_eq!(code, "404");
    let out = curl_text(&["-i", "-X", "DELETE", &url("/hello.txt")]);
    assert!(out.starts_with("HTTP/1.1 405"), "{out}");
    assert!(out.contains("Allow: GET, HEAD"), "{out}");
    // Traversal, with curl's own normalisation turned off.
    for p in [
        "/../secret",
        "/%2e%2e/secret",
        "/sub/%2e%2e/%2e%2e/secret",
        "/leak",
    ] {
        let out = curl_text(&["--path-as-is", "-i", &url(p)]);
        assert!(!out.contains("TOP SECRET"), "{p} leaked: {out}");
        assert!(
            out.starts_with("HTTP/1.1 403") || out.starts_with("HTTP/1.1 404"),
            "{p}: {out}"
        );
    }
    // A directory listing (escaped, linked) and a percent-encoded name.
    let out = curl_text(&["-L", &url("/sub")]);
    assert!(out.contains("href=\"./a%20b.txt\""), "{out}");
    assert_eq!(curl_text(&[&url("/sub/a%20b.txt")]), "spaced\n");
    // The big file, byte-exact.
    let (out, _) = curl(&[&url("/big.bin")]);
    assert!(out == t.big, "big.bin differs ({} bytes)", out.len());
}

#[test]
fn curl_on_every_driver() {
    let t = tree("curl");
    for driver in DRIVERS {
        let running = serve(driver, &t.root);
        curl_checks(&t, port(&running));
        drop(running);
    }
}

#[test]
fn python_on_every_driver() {
    let t = tree("py");
    for driver in DRIVERS {
        let running = serve(driver, &t.root);
        let out = run_python(
            "web_clients.py",
            &[&port(&running).to_string(), t.root.to_str().unwrap()],
        );
        assert_eq!(out.trim(), "ok", "{driver:?}");
    }
}

#[test]
fn streamed_without_sendfile_on_every_driver() {
    let t = tree("stream");
    for driver in DRIVERS {
        let running = serve_streaming(driver, &t.root);
        let base = format!("http://127.0.0.1:{}", port(&running));
        let (out, _) = curl(&[&format!("{base}/big.bin")]);
        assert!(
            out == t.big,
            "{driver:?}: big.bin differs ({} bytes)",
            out.len()
        );
        let (out, _) = curl(&["-r", "1000-1999999", &format!("{base}/big.bin")]);
        assert!(out == t.big[1000..2_000_000], "{driver:?}: range differs");
        // Two large bodies one after the other on one kept-alive connection.
        let u = format!("{base}/big.bin");
        let (out, _) = curl(&[&u, &u]);
        assert!(out.len() == 2 * t.big.len() && out[t.big.len()..] == t.big[..]);
    }
}

#[test]
fn bad_path_is_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_twill"))
        .args([
            "web",
            "--path",
            "/nonexistent-twill-dir",
            "--listen",
            "tcp:0",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--path /nonexistent-twill-dir"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// Reads one response (head and Content-Length body) from `r`.
fn read_response(r: &mut impl std::io::BufRead) -> (String, Vec<u8>) {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "EOF inside a head");
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (head, body)
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    use std::io::{BufReader, Write};
    let t = tree("pipe");
    for driver in DRIVERS {
        for running in [serve(driver, &t.root), serve_streaming(driver, &t.root)] {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port(&running))).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                .unwrap();
            // The big file first: its answer takes longest, yet must come
            // first.
            s.write_all(
                b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n\
                  GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-4\r\n\r\n\
                  HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n\
                  GET /nope HTTP/1.1\r\nHost: x\r\n\r\n\
                  PUT /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
                  GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n",
            )
            .unwrap();
            let mut r = BufReader::new(s);
            let (h, b) = read_response(&mut r);
            assert!(h.starts_with("HTTP/1.1 200"), "{driver:?}: {h}");
            assert!(b == t.big, "{driver:?}: big.bin differs");
            let (h, b) = read_response(&mut r);
            assert!(h.starts_with("HTTP/1.1 206"), "{driver:?}: {h}");
            assert_eq!(b, b"hello");
            // HEAD: Content-Length of the GET, no body.
            let mut head = String::new();
            loop {
                let mut line = String::new();
                let n = std::io::BufRead::read_line(&mut r, &mut line).unwrap();
                assert!(n > 0, "{driver:?}: EOF inside the HEAD response");
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            assert!(head.starts_with("HTTP/1.1 200"), "{driver:?}: {head}");
            assert!(head.contains("Content-Length: 12\r\n"), "{head}");
            let (h, _) = read_response(&mut r);
            assert!(h.starts_with("HTTP/1.1 404"), "{driver:?}: {h}");
            let (h, _) = read_response(&mut r);
            assert!(h.starts_with("HTTP/1.1 405"), "{driver:?}: {h}");
            let (h, b) = read_response(&mut r);
            assert!(h.starts_with("HTTP/1.1 200"), "{driver:?}: {h}");
            assert_eq!(b, b"hello world\n");
            // (Not `Connection: close` on the last request: twill-http's
            // server then sometimes drops the earlier responses still
            // waiting their turn — reported, to be fixed there.)
        }
    }
}

#[test]
fn help_names_the_flags() {
    for (sub, flags) in [
        ("web", &["--path", "--listen", "--driver"][..]),
        (
            "get",
            &["--output", "--head", "--header", "--max-redirects"][..],
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_twill"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        for f in flags {
            assert!(text.contains(f), "twill {sub} --help lacks {f}: {text}");
        }
    }
}

#[test]
fn serves_on_unix_sockets() {
    let t = tree("unix");
    for driver in DRIVERS {
        let path = common::unix_path("web");
        let running = start_web(args(driver, &[&format!("unix:{path}")]), &t.root).expect("start");
        let out = curl_text(&["--unix-socket", &path, "http://localhost/hello.txt"]);
        assert_eq!(out, "hello world\n", "{driver:?}");
        let (out, _) = curl(&["--unix-socket", &path, "http://localhost/big.bin"]);
        assert!(out == t.big, "{driver:?}: big.bin differs over unix");
        drop(running);
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn serves_over_tls_without_sendfile() {
    let t = tree("tls");
    let certs = t.dir.join("certs");
    let out = Command::new(env!("CARGO_BIN_EXE_twill"))
        .args(["cert", "--hostname", "localhost", "--out"])
        .arg(&certs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (key, cert) = (certs.join("key.pem"), certs.join("cert.pem"));
    for driver in DRIVERS {
        let ep = format!(
            "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}",
            key.display(),
            cert.display()
        );
        let running = start_web(args(driver, &[&ep]), &t.root).expect("start");
        let port = port(&running);
        let resolve = format!("localhost:{port}:127.0.0.1");
        let url = |p: &str| format!("https://localhost:{port}{p}");
        let tls = ["--cacert", cert.to_str().unwrap(), "--resolve", &resolve];
        let (out, _) = curl(&[&tls[..], &[&url("/hello.txt")]].concat());
        assert_eq!(out, b"hello world\n", "{driver:?}");
        let (out, _) = curl(&[&tls[..], &[&url("/big.bin")]].concat());
        assert!(out == t.big, "{driver:?}: big.bin differs over TLS");
        let (out, _) = curl(&[&tls[..], &["-r", "10-19", &url("/big.bin")]].concat());
        assert!(out == t.big[10..20], "{driver:?}: range over TLS");
    }
}

/// The open-file cache: a file asked for twice within its validity is
/// answered from the cache with the same validators, ranges and
/// conditions as the first time; once the validity has passed, a changed
/// file is seen (new bytes, new ETag).
#[test]
fn cached_files_answer_alike_and_expire() {
    let t = tree("cache");
    for driver in DRIVERS {
        let path = t.root.join(format!("cached-{driver:?}.txt"));
        std::fs::write(&path, b"first version\n").unwrap();
        let r = serve(driver, &t.root);
        let url = format!("http://127.0.0.1:{}/cached-{driver:?}.txt", port(&r));
        let head = |extra: &[&str]| {
            let mut a = vec!["-s", "-D", "-", "-o", "/dev/null"];
            a.extend_from_slice(extra);
            a.push(&url);
            curl_text(&a)
        };
        let etag_of = |h: &str| {
            h.lines()
                .find_map(|l| {
                    l.strip_prefix("etag: ")
                        .or_else(|| l.strip_prefix("ETag: "))
                })
                // A file changed within the last second gets a weak tag
                // (W/), a strong one after: on a slow machine the two
                // requests may fall on either side, so the opaque part is
                // what must match.
                .map(|v| v.trim().trim_start_matches("W/").to_string())
                .unwrap_or_else(|| panic!("no ETag in {h}"))
        };
        let first = head(&[]);
        let etag = etag_of(&first);
        // Hits: same ETag, a range, a 304.
        let again = head(&[]);
        assert_eq!(etag_of(&again), etag, "{driver:?}");
        assert_eq!(
            curl(&["-s", "-r", "6-12", &url]).0,
            b"version",
            "{driver:?}"
        );
        let inm = format!("If-None-Match: {etag}");
        assert!(
            head(&["-H", &inm]).starts_with("HTTP/1.1 304"),
            "{driver:?}"
        );
        // Changed on disk (another size, so another ETag); seen after the
        // cache's validity.
        std::fs::write(&path, b"second, longer version\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(
            curl(&["-s", &url]).0,
            b"second, longer version\n",
            "{driver:?}"
        );
        assert_ne!(etag_of(&head(&[])), etag, "{driver:?}");
        drop(r);
    }
}
