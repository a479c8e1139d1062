//! TLS against peers nobody here wrote, on every driver: `openssl s_client`
//! and `curl --cacert` against `twill echo`/`twill daytime --listen ssl:…`,
//! and Python's `ssl` module with SNI (two names, two certificates) and
//! ALPN.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{args, cert, run_python, Cert, DRIVERS};
use twill::cli::{start, Driver, LogEvents};
use twill_basic::{Daytime, Echo};
use twill_driver::{Mode, Running, ServeOptions};
use twill_tls::{ServerSetup, Tls, TlsContext, TlsService};

fn der_hex(c: &Cert) -> String {
    let pem = std::fs::read(&c.cert).unwrap();
    let der = twill_tls::config::parse_certs(&pem, "cert").unwrap();
    der[0].iter().map(|b| format!("{b:02x}")).collect()
}

fn ssl(c: &Cert) -> String {
    format!(
        "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}",
        c.key, c.cert
    )
}

fn port<M>(r: &Running<M>) -> u16 {
    r.addr().port()
}

fn echo(driver: Driver, c: &Cert) -> Running<Echo> {
    start(args(driver, &[&ssl(c)]), "", Mode::Factory, || {
        (Echo::new(), LogEvents)
    })
    .expect("start twill echo on ssl:")
}

/// Runs `openssl s_client -brief` against `port`, sends `line`, waits for
/// it to come back; returns (stdout, stderr).
fn s_client(port: u16, ca: &str, line: &str) -> (String, String) {
    let mut child = Command::new("openssl")
        .args(["s_client", "-brief", "-ign_eof", "-verify_return_error"])
        .args(["-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost", "-verify_hostname", "localhost"])
        .args(["-CAfile", ca])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed by scripts/test-all.sh");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(line.as_bytes()).unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let want = line.to_string();
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&got).contains(&want) {
                break;
            }
        }
        let _ = tx.send(String::from_utf8_lossy(&got).into_owned());
    });
    let out = rx.recv_timeout(Duration::from_secs(15)).unwrap_or_default();
    drop(stdin);
    let _ = child.kill();
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let _ = child.wait();
    (out, err)
}

#[test]
fn openssl_s_client_against_twill_echo_on_every_driver() {
    let c = cert("openssl", &["localhost"]);
    for driver in DRIVERS {
        let server = echo(driver, &c);
        let (out, err) = s_client(port(&server), &c.cert, "hello through tls\n");
        assert!(
            out.contains("hello through tls"),
            "{driver:?}: {out:?} {err}"
        );
        assert!(err.contains("Verification: OK"), "{driver:?}: {err}");
        assert!(err.contains("TLSv1.3"), "{driver:?}: {err}");
    }
}

/// Runs curl verbosely; returns (exit code, stdout, stderr). curl's own
/// error line comes first in the returned stderr, so assertion messages
/// start with it.
fn curl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-v", "--max-time", "15"])
        .args(args)
        .output()
        .expect("curl is installed by scripts/test-all.sh");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("curl:")).collect();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        format!("{}\n{err}", errors.join("\n")),
    )
}

#[test]
fn curl_cacert_against_twill_daytime_and_echo_on_every_driver() {
    let c = cert("curl", &["localhost"]);
    let wrong = cert("curl-wrong", &["localhost"]);
    for driver in DRIVERS {
        // Daytime answers and closes with close_notify: a whole (HTTP/0.9)
        // response for curl.
        let server = start(args(driver, &[&ssl(&c)]), "", Mode::Factory, || {
            (Daytime::new(), LogEvents)
        })
        .expect("start twill daytime on ssl:");
        let url = format!("https://localhost:{}/", port(&server));
        let (code, out, err) = curl(&["--http0.9", "--cacert", &c.cert, &url]);
        assert_eq!(code, 0, "{driver:?}: {err}");
        assert!(out.contains("20"), "{driver:?}: a date: {out:?}");
        assert!(err.contains("TLSv1.3"), "{driver:?}: {err}");
        // The wrong CA: verification fails (curl's exit 60).
        let (code, _, err) = curl(&["--http0.9", "--cacert", &wrong.cert, &url]);
        assert_eq!(code, 60, "{driver:?}: {err}");
        // The server keeps serving after the failed handshake.
        let (code, _, err) = curl(&["--http0.9", "--cacert", &c.cert, &url]);
        assert_eq!(code, 0, "{driver:?}: {err}");

        // Echo sends curl's request back: a handshake and bytes both ways.
        let server = echo(driver, &c);
        let url = format!("https://localhost:{}/echo", port(&server));
        let (_, out, err) = curl(&["--http0.9", "--max-time", "2", "--cacert", &c.cert, &url]);
        assert!(
            out.starts_with("GET /echo HTTP/1.1"),
            "{driver:?}: {out:?} {err}"
        );
    }
}

#[test]
fn python_ssl_client_sni_picks_the_certificate_and_alpn_is_negotiated() {
    let a = cert("py-a", &["a.test"]);
    let b = cert("py-b", &["b.test"]);
    let mut cas = std::fs::read(&a.cert).unwrap();
    cas.extend(std::fs::read(&b.cert).unwrap());
    let ca = a.dir.join("both.pem");
    std::fs::write(&ca, cas).unwrap();
    let ca = ca.to_string_lossy().into_owned();

    // Certificates by SNI, from the endpoint grammar (`sni=host=cert,key`).
    for driver in DRIVERS {
        let ep = format!("{}:sni=b.test={},{}", ssl(&a), b.cert, b.key);
        let server = start(args(driver, &[&ep]), "", Mode::Factory, || {
            (Echo::new(), LogEvents)
        })
        .expect("start");
        let p = port(&server).to_string();
        for (name, want) in [("a.test", &a), ("b.test", &b)] {
            let out = run_python("tls_client.py", &["127.0.0.1", &p, &ca, name]);
            assert!(
                out.contains(&format!("cert={}", der_hex(want))),
                "{driver:?} {name}: {out}"
            );
            assert!(out.contains("echo=ping over tls"), "{driver:?}: {out}");
            assert!(out.contains("version=TLSv1.3"), "{driver:?}: {out}");
        }
    }

    // ALPN: a server offering h2 and http/1.1, a client wanting http/1.1.
    let pem = |p: &str| std::fs::read(p).unwrap();
    let setup = ServerSetup::from_pem(&pem(&a.cert), &pem(&a.key))
        .unwrap()
        .with_alpn(vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    let ctx = TlsContext::new().with_server(&setup).unwrap();
    for driver in DRIVERS {
        let endpoints = vec!["tcp:0:interface=127.0.0.1".parse().unwrap()];
        let opts = ServeOptions::factory(endpoints);
        let ctx = ctx.clone();
        let make = move || {
            (
                Tls::server(Echo::new(), &ctx),
                TlsService::new(twill_core::service::Ignore),
            )
        };
        let server = match driver {
            Driver::Std => twill_std::spawn(opts, make),
            Driver::Mio => twill_mio::spawn(opts, make),
            Driver::Tokio => twill_tokio::spawn(opts, make),
        }
        .expect("start");
        let p = server.addr().port().to_string();
        let out = run_python(
            "tls_client.py",
            &["127.0.0.1", &p, &ca, "a.test", "spdy/1,http/1.1"],
        );
        assert!(out.contains("alpn=http/1.1"), "{driver:?}: {out}");
        assert!(out.contains("echo=ping over tls"), "{driver:?}: {out}");
    }
}

#[test]
fn curl_fetches_files_from_twill_web_over_ssl_on_every_driver() {
    let c = cert("web", &["localhost"]);
    let root = c.dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("hello.txt"), b"hello over https\n").unwrap();
    // Big enough for backpressure through the layer (no sendfile behind
    // ssl:; the file is read in chunks and encrypted).
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    for driver in DRIVERS {
        let server = twill::cli::start_web(args(driver, &[&ssl(&c)]), &root).expect("start web");
        let base = format!("https://localhost:{}", port(&server));
        let (code, out, err) = curl(&["--cacert", &c.cert, &format!("{base}/hello.txt")]);
        assert_eq!(code, 0, "{driver:?}: {err}");
        assert_eq!(out, "hello over https\n", "{driver:?}");
        let file = c.dir.join(format!("big-{driver:?}.out"));
        let file_s = file.to_string_lossy().into_owned();
        let (code, _, err) = curl(&[
            "--cacert",
            &c.cert,
            "-o",
            &file_s,
            &format!("{base}/big.bin"),
        ]);
        assert_eq!(code, 0, "{driver:?}: {err}");
        assert!(
            std::fs::read(&file).unwrap() == big,
            "{driver:?}: big.bin differs"
        );
    }
}

#[test]
fn std_client_conn_on_a_tls_endpoint_talks_to_twill_echo() {
    use twill_basic::{Framed, FramedEvent, Lines};
    use twill_core::ClientEndpoint;
    use twill_tls::{Failure, TlsEvent};

    let c = cert("client", &["localhost"]);
    let server = echo(Driver::Mio, &c);
    let p = port(&server);

    // `tls:` with the CA file and the name to verify.
    let ep: ClientEndpoint = format!("tls:127.0.0.1:{p}:ca={}:hostname=localhost", c.cert)
        .parse()
        .unwrap();
    let (ctx, name) = TlsContext::for_client_endpoint(&ep).unwrap().expect("tls:");
    assert_eq!(name, "localhost");
    let machine = Tls::client(Framed::new(Lines::new()), &ctx, &name);
    let mut conn = twill_std::Conn::connect(&ep, machine).expect("connect");
    let id = conn.id();
    loop {
        match conn.next_event().unwrap() {
            Some(TlsEvent::Secured { info, .. }) => {
                assert_eq!(info.version.as_deref(), Some("TLSv1.3"));
                break;
            }
            Some(TlsEvent::Failed { error, .. }) => panic!("handshake failed: {error}"),
            Some(_) => {}
            None => panic!("closed before the handshake"),
        }
    }
    conn.machine()
        .inner_mut()
        .send(id, b"a line through the layer")
        .unwrap();
    let frame = loop {
        match conn.next_event().unwrap() {
            Some(TlsEvent::Inner(FramedEvent::Frame { frame, .. })) => break frame,
            Some(_) => {}
            None => panic!("closed before the echo"),
        }
    };
    assert_eq!(frame, "a line through the layer");

    // The wrong name does not verify: a typed failure, no data.
    let ep: ClientEndpoint = format!("tls:127.0.0.1:{p}:ca={}:hostname=evil.test", c.cert)
        .parse()
        .unwrap();
    let (ctx, name) = TlsContext::for_client_endpoint(&ep).unwrap().unwrap();
    let machine = Tls::client(Framed::new(Lines::new()), &ctx, &name);
    let mut conn = twill_std::Conn::connect(&ep, machine).expect("connect");
    let failure = loop {
        match conn.next_event().unwrap() {
            Some(TlsEvent::Failed { error, .. }) => break error,
            Some(TlsEvent::Secured { .. }) => panic!("secured with the wrong name"),
            Some(_) => {}
            None => panic!("closed without a failure event"),
        }
    };
    assert!(matches!(failure, Failure::Tls(_)), "{failure:?}");
    // And the server keeps serving.
    let (out, err) = s_client(p, &c.cert, "still serving\n");
    assert!(out.contains("still serving"), "{out:?} {err}");
}

#[test]
fn chat_hub_relays_between_a_plain_and_a_tls_client_on_every_driver() {
    use std::io::{BufRead, BufReader};
    use twill_basic::{Chat, Framed, FramedEvent, Lines};
    use twill_tls::TlsEvent;

    let c = cert("chat", &["localhost"]);
    for driver in DRIVERS {
        // One hub, a plain listener (1) and an ssl: one (2).
        let server = start(
            args(driver, &["tcp:0:interface=127.0.0.1", &ssl(&c)]),
            "",
            Mode::Hub,
            || (Chat::new(), LogEvents),
        )
        .expect("start chat");
        let addrs = server.local_addrs().to_vec();
        let plain_addr = addrs[0].socket_addr().unwrap();
        let tls_port = addrs[1].socket_addr().unwrap().port();

        let ep = format!("tls:127.0.0.1:{tls_port}:ca={}:hostname=localhost", c.cert)
            .parse()
            .unwrap();
        let (ctx, name) = TlsContext::for_client_endpoint(&ep).unwrap().unwrap();
        let mut secure =
            twill_std::Conn::connect(&ep, Tls::client(Framed::new(Lines::new()), &ctx, &name))
                .unwrap();
        let id = secure.id();
        while !matches!(secure.next_event().unwrap(), Some(TlsEvent::Secured { .. })) {}

        let plain = std::net::TcpStream::connect(plain_addr).unwrap();
        plain
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(plain.try_clone().unwrap());
        // Wait until the hub knows the plain client: it hears the TLS one.
        let mut got = String::new();
        for _ in 0..100 {
            secure.machine().inner_mut().send(id, b"from tls").unwrap();
            secure.flush().unwrap();
            std::thread::sleep(Duration::from_millis(20));
            plain.set_nonblocking(true).unwrap();
            let r = reader.read_line(&mut got);
            plain.set_nonblocking(false).unwrap();
            if r.is_ok() && got.contains("from tls") {
                break;
            }
        }
        assert!(got.contains("from tls"), "{driver:?}: {got:?}");

        (&plain).write_all(b"from plain\n").unwrap();
        let frame = loop {
            match secure.next_event().unwrap() {
                Some(TlsEvent::Inner(FramedEvent::Frame { frame, .. }))
                    if frame == "from plain" =>
                {
                    break frame
                }
                Some(_) => {}
                None => panic!("{driver:?}: closed"),
            }
        };
        assert_eq!(frame, "from plain");
    }
}
