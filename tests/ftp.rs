//! `twill ftp` against clients nobody here wrote — Python's `ftplib` and
//! `curl ftp://` — on every driver: login, listings, binary and ASCII
//! transfers both ways, REST resume, rename, delete, passive (EPSV and
//! PASV) and active mode, with the bytes of every file compared; and
//! hostile input (path escapes, bounce PORT, a foreign data connection, a
//! 10,000-character command, ABOR mid-transfer, failed logins) refused
//! while another session keeps working.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::{args, run_python, Rng, DRIVERS};
use twill::cli::Driver;
use twill::ftp::cli::{start_ftp, FtpOptions};
use twill::ftp::Server;
use twill_driver::Running;

/// A served tree: `dir/root` is served, `dir/secret` lies outside it.
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
    let dir = std::env::temp_dir().join(format!("twill-ftp-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("hello.txt"), b"hello world\n").unwrap();
    std::fs::write(root.join("unix.txt"), b"one\ntwo\nthree\n").unwrap();
    let big = Rng(0xf7b).bytes(8 * 1024 * 1024 + 4321);
    std::fs::write(root.join("big.bin"), &big).unwrap();
    std::fs::write(dir.join("secret"), b"TOP SECRET\n").unwrap();
    std::os::unix::fs::symlink(dir.join("secret"), root.join("leak")).unwrap();
    Tree { dir, root, big }
}

fn serve(driver: Driver, root: &Path, anonymous: bool) -> Running<Server> {
    start_ftp(
        args(driver, &["tcp:0:interface=127.0.0.1"]),
        FtpOptions {
            root: root.to_path_buf(),
            verify: Some(Arc::new(|u: &str, p: &[u8]| u == "alice" && p == b"secret")),
            anonymous,
            passive_ports: None,
            tls: None,
            require_tls: false,
        },
    )
    .expect("start twill ftp")
}

fn port(r: &Running<Server>) -> String {
    r.local_addrs()[0]
        .socket_addr()
        .expect("tcp")
        .port()
        .to_string()
}

#[test]
fn ftplib_session_on_every_driver() {
    for driver in DRIVERS {
        let t = tree(&format!("py-{driver:?}"));
        let r = serve(driver, &t.root, false);
        let out = run_python(
            "ftp_clients.py",
            &["session", &port(&r), t.root.to_str().unwrap()],
        );
        assert!(out.contains("ok"), "{driver:?}: {out}");
    }
}

#[test]
fn ftplib_anonymous_is_read_only() {
    let t = tree("anon");
    let r = serve(Driver::Mio, &t.root, true);
    run_python(
        "ftp_clients.py",
        &["anonymous", &port(&r), t.root.to_str().unwrap()],
    );
}

#[test]
fn hostile_input_is_refused_while_another_session_works() {
    for driver in DRIVERS {
        let t = tree(&format!("bad-{driver:?}"));
        let r = serve(driver, &t.root, false);
        run_python(
            "ftp_clients.py",
            &["hostile", &port(&r), t.root.to_str().unwrap()],
        );
    }
}

#[test]
fn users_file_logins() {
    let t = tree("users");
    let file = t.dir.join("users");
    twill::users::add_user(&file, "bob", b"hunter2").unwrap();
    let verify = twill::ftp::cli::load_users(&file).unwrap();
    let r = start_ftp(
        args(Driver::Tokio, &["tcp:0:interface=127.0.0.1"]),
        FtpOptions {
            root: t.root.clone(),
            verify: Some(verify),
            anonymous: false,
            passive_ports: Some((42_000, 42_010)),
            tls: None,
            require_tls: false,
        },
    )
    .expect("start");
    run_python(
        "ftp_clients.py",
        &[
            "login",
            &port(&r),
            t.root.to_str().unwrap(),
            "bob",
            "hunter2",
        ],
    );
}

/// Runs curl; returns stdout.
fn curl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl is installed by scripts/test-all.sh");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "curl {args:?}: {err}");
    out.stdout
}

#[test]
fn curl_on_every_driver() {
    for driver in DRIVERS {
        let t = tree(&format!("curl-{driver:?}"));
        let r = serve(driver, &t.root, false);
        let base = format!("ftp://alice:secret@127.0.0.1:{}", port(&r));
        let local = t.dir.join("local");
        std::fs::create_dir_all(&local).unwrap();
        // Download, passive (curl tries EPSV first) and active (EPRT/PORT).
        assert_eq!(curl(&[&format!("{base}/big.bin")]), t.big, "{driver:?}");
        assert_eq!(
            curl(&["-P", "-", &format!("{base}/big.bin")]),
            t.big,
            "{driver:?} active"
        );
        assert_eq!(
            curl(&["--disable-epsv", &format!("{base}/hello.txt")]),
            b"hello world\n"
        );
        // ASCII download: CRLF on the wire (checked byte-exact with
        // ftplib), back to LF by curl.
        assert_eq!(
            curl(&["-B", &format!("{base}/unix.txt")]),
            b"one\ntwo\nthree\n"
        );
        // Listing.
        let list = String::from_utf8(curl(&[&format!("{base}/")])).unwrap();
        assert!(
            list.lines()
                .any(|l| l.starts_with('-') && l.ends_with(" big.bin"))
                && list
                    .lines()
                    .any(|l| l.starts_with('d') && l.ends_with(" sub")),
            "{list}"
        );
        let names = String::from_utf8(curl(&["-l", &format!("{base}/")])).unwrap();
        assert!(names.lines().any(|l| l == "hello.txt"), "{names}");
        // Resume: a partial local file is completed with REST.
        let part = local.join("part.bin");
        std::fs::write(&part, &t.big[..3_000_000]).unwrap();
        curl(&[
            "-C",
            "-",
            "-o",
            part.to_str().unwrap(),
            &format!("{base}/big.bin"),
        ]);
        assert_eq!(std::fs::read(&part).unwrap(), t.big, "{driver:?} resume");
        // Upload, passive and active; then a resumed upload.
        let up = local.join("up.bin");
        let data = Rng(7).bytes(1_500_000);
        std::fs::write(&up, &data).unwrap();
        curl(&["-T", up.to_str().unwrap(), &format!("{base}/up.bin")]);
        assert_eq!(std::fs::read(t.root.join("up.bin")).unwrap(), data);
        curl(&[
            "-P",
            "-",
            "-T",
            up.to_str().unwrap(),
            &format!("{base}/up2.bin"),
        ]);
        assert_eq!(std::fs::read(t.root.join("up2.bin")).unwrap(), data);
        std::fs::write(t.root.join("up3.bin"), &data[..600_000]).unwrap();
        curl(&[
            "-C",
            "-",
            "-T",
            up.to_str().unwrap(),
            &format!("{base}/up3.bin"),
        ]);
        assert_eq!(std::fs::read(t.root.join("up3.bin")).unwrap(), data);
        // Rename and delete (quote commands after the transfer).
        curl(&[
            "-Q",
            "-RNFR up.bin",
            "-Q",
            "-RNTO renamed.bin",
            "-Q",
            "-DELE up2.bin",
            &format!("{base}/hello.txt"),
        ]);
        assert!(t.root.join("renamed.bin").exists() && !t.root.join("up.bin").exists());
        assert!(!t.root.join("up2.bin").exists());
        // A missing file is an error (curl exits non-zero).
        let st = Command::new("curl")
            .args(["-sS", "--max-time", "10", &format!("{base}/nope.bin")])
            .output()
            .unwrap();
        assert!(!st.status.success());
    }
}

/// pyftpdlib serving a tree, stopped (stdin closed) when dropped.
struct PyFtpd {
    child: std::process::Child,
    port: u16,
}

impl Drop for PyFtpd {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn pyftpdlib(root: &Path, no_epsv: bool) -> PyFtpd {
    pyftpdlib_with(root, if no_epsv { &["no-epsv"] } else { &[] })
}

fn pyftpdlib_with(root: &Path, extra: &[&str]) -> PyFtpd {
    use std::io::BufRead;
    let mut cmd = Command::new(common::python());
    cmd.arg(common::py_script("ftp_pyftpdlib.py"))
        .arg(root)
        .args(extra);
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python with pyftpdlib (scripts/test-all.sh installs it)");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("pyftpdlib did not start: {line:?}"));
    PyFtpd { child, port }
}

/// Runs the `twill` binary; returns (success, stdout, stderr).
fn twill(args: &[&str]) -> (bool, Vec<u8>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_twill"))
        .args(args)
        .output()
        .expect("twill binary");
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ftp_commands_against_pyftpdlib() {
    for no_epsv in [false, true] {
        let t = tree(&format!("pyftpd-{no_epsv}"));
        let srv = pyftpdlib(&t.root, no_epsv);
        let base = format!("ftp://alice:secret@127.0.0.1:{}", srv.port);
        let local = t.dir.join("local");
        std::fs::create_dir_all(&local).unwrap();
        // Listings.
        let (ok, out, err) = twill(&["ftp-ls", &format!("{base}/")]);
        assert!(ok, "{err}");
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("big.bin") && text.contains("sub"), "{text}");
        let (ok, out, err) = twill(&["ftp-ls", "-1", &format!("{base}/")]);
        assert!(ok, "{err}");
        let mut names: Vec<String> = String::from_utf8_lossy(&out)
            .lines()
            .map(|l| l.trim().to_string())
            .collect();
        names.sort();
        assert!(names.contains(&"hello.txt".to_string()), "{names:?}");
        // Downloads: passive, active, to stdout, and resumed.
        for active in [false, true] {
            let o = local.join(format!("big-{active}.bin"));
            let mut a = vec!["ftp-get", "-o", o.to_str().unwrap()];
            if active {
                a.push("--active");
            }
            let url = format!("{base}/big.bin");
            a.push(&url);
            let (ok, _, err) = twill(&a);
            assert!(ok, "active={active} no_epsv={no_epsv}: {err}");
            assert_eq!(std::fs::read(&o).unwrap(), t.big);
        }
        let (ok, out, err) = twill(&["ftp-get", &format!("{base}/hello.txt")]);
        assert!(ok, "{err}");
        assert_eq!(out, b"hello world\n");
        let part = local.join("part.bin");
        std::fs::write(&part, &t.big[..1_234_567]).unwrap();
        let (ok, _, err) = twill(&[
            "ftp-get",
            "-c",
            "-o",
            part.to_str().unwrap(),
            &format!("{base}/big.bin"),
        ]);
        assert!(ok, "{err}");
        assert_eq!(std::fs::read(&part).unwrap(), t.big, "resumed download");
        // Uploads: whole, active, and resumed (SIZE then REST).
        let up = local.join("up.bin");
        let data = Rng(99).bytes(3_000_000);
        std::fs::write(&up, &data).unwrap();
        let (ok, _, err) = twill(&["ftp-put", up.to_str().unwrap(), &format!("{base}/up.bin")]);
        assert!(ok, "{err}");
        assert_eq!(std::fs::read(t.root.join("up.bin")).unwrap(), data);
        let (ok, _, err) = twill(&[
            "ftp-put",
            "--active",
            up.to_str().unwrap(),
            &format!("{base}/sub/"),
        ]);
        assert!(ok, "{err}");
        assert_eq!(std::fs::read(t.root.join("sub/up.bin")).unwrap(), data);
        std::fs::write(t.root.join("up3.bin"), &data[..1_000_000]).unwrap();
        let (ok, _, err) = twill(&[
            "ftp-put",
            "-c",
            up.to_str().unwrap(),
            &format!("{base}/up3.bin"),
        ]);
        assert!(ok, "{err}");
        assert_eq!(
            std::fs::read(t.root.join("up3.bin")).unwrap(),
            data,
            "resumed upload"
        );
        // Failures are one line and a non-zero exit.
        let (ok, _, err) = twill(&["ftp-get", &format!("{base}/missing.bin")]);
        assert!(!ok && err.contains("550"), "{err}");
        let (ok, _, err) = twill(&[
            "ftp-get",
            &format!("ftp://alice:wrong@127.0.0.1:{}/hello.txt", srv.port),
        ]);
        assert!(!ok && err.contains("530"), "{err}");
    }
}

/// The client machine's other operations (mkdir, rename, delete, size)
/// against pyftpdlib, on the mio reactor.
#[test]
fn client_machine_operations_against_pyftpdlib() {
    use std::sync::mpsc;
    use twill::ftp::{Client, ClientConfig, ClientEvent, Outcome};
    use twill_core::{Cx, Service};

    struct Ops(mpsc::Sender<(u64, Result<Outcome, String>)>);
    impl Service<Client> for Ops {
        type Done = ();
        fn on_event(&mut self, cx: &mut Cx<'_, Client, ()>, e: ClientEvent) {
            match e {
                ClientEvent::Done { id, result } => {
                    let _ = self.0.send((id.0, result.map_err(|e| e.to_string())));
                }
                ClientEvent::Closed => cx.stop(),
                _ => {}
            }
        }
    }

    let t = tree("pyftpd-ops");
    let srv = pyftpdlib(&t.root, false);
    let mut c = Client::new(ClientConfig {
        user: "alice".into(),
        password: "secret".into(),
        ..ClientConfig::default()
    });
    c.mkdir("newdir").unwrap();
    c.rename("hello.txt", "newdir/renamed.txt").unwrap();
    c.size("newdir/renamed.txt").unwrap();
    c.delete("unix.txt").unwrap();
    c.delete("no-such-file").unwrap();
    c.rmdir("sub").unwrap();
    c.quit().unwrap();
    let (tx, rx) = mpsc::channel();
    let mut reactor = twill_mio::Reactor::new().unwrap();
    let ep = format!("tcp:127.0.0.1:{}", srv.port).parse().unwrap();
    let _s = reactor.connect(&ep, c, Ops(tx));
    reactor.run().unwrap();
    let got: Vec<_> = rx.try_iter().collect();
    assert_eq!(got.len(), 7, "{got:?}");
    assert_eq!(got[0], (1, Ok(Outcome::Ok)));
    assert_eq!(got[1], (2, Ok(Outcome::Ok)));
    assert_eq!(got[2], (3, Ok(Outcome::Size(12))));
    assert_eq!(got[3], (4, Ok(Outcome::Ok)));
    assert!(
        matches!(&got[4], (5, Err(e)) if e.contains("550")),
        "{got:?}"
    );
    assert_eq!(got[5], (6, Ok(Outcome::Ok)));
    assert_eq!(got[6], (7, Ok(Outcome::Ok)));
    assert_eq!(
        std::fs::read(t.root.join("newdir/renamed.txt")).unwrap(),
        b"hello world\n"
    );
    assert!(!t.root.join("unix.txt").exists() && !t.root.join("sub").exists());
}

// ---- AUTH TLS / PBSZ / PROT (RFC 4217) --------------------------------

/// `twill ftp --cert … --key … [--require-tls]` on `driver`.
fn serve_tls(driver: Driver, root: &Path, c: &common::Cert, require: bool) -> Running<Server> {
    let ctx = twill::ftp::cli::tls_context(Path::new(&c.cert), Path::new(&c.key)).unwrap();
    start_ftp(
        args(driver, &["tcp:0:interface=127.0.0.1"]),
        FtpOptions {
            root: root.to_path_buf(),
            verify: Some(Arc::new(|u: &str, p: &[u8]| u == "alice" && p == b"secret")),
            anonymous: false,
            passive_ports: None,
            tls: Some(ctx),
            require_tls: require,
        },
    )
    .expect("start twill ftp with TLS")
}

#[test]
fn ftplib_tls_on_every_driver() {
    let c = common::cert("ftp-tls", &["localhost", "127.0.0.1"]);
    for driver in DRIVERS {
        let t = tree(&format!("tls-{driver:?}"));
        let r = serve_tls(driver, &t.root, &c, false);
        for mode in ["session", "inject"] {
            let out = run_python(
                "ftp_tls_clients.py",
                &[mode, &port(&r), t.root.to_str().unwrap(), &c.cert],
            );
            assert!(out.contains("ok"), "{driver:?} {mode}: {out}");
        }
    }
}

#[test]
fn ftplib_require_tls() {
    let c = common::cert("ftp-tls-req", &["localhost", "127.0.0.1"]);
    let t = tree("tls-require");
    let r = serve_tls(Driver::Tokio, &t.root, &c, true);
    let out = run_python(
        "ftp_tls_clients.py",
        &["require", &port(&r), t.root.to_str().unwrap(), &c.cert],
    );
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn curl_ssl_reqd_on_every_driver() {
    let c = common::cert("ftp-tls-curl", &["localhost", "127.0.0.1"]);
    for driver in DRIVERS {
        let t = tree(&format!("tls-curl-{driver:?}"));
        let r = serve_tls(driver, &t.root, &c, true);
        let base = format!("ftp://alice:secret@localhost:{}", port(&r));
        let tls = ["--ssl-reqd", "--cacert", c.cert.as_str()];
        let get = |extra: &[&str], path: &str| {
            let url = format!("{base}/{path}");
            let mut a: Vec<&str> = tls.to_vec();
            a.extend_from_slice(extra);
            a.push(&url);
            curl(&a)
        };
        assert_eq!(get(&[], "big.bin"), t.big, "{driver:?} passive");
        // Active mode is not asked of curl here: Debian's curl 7.88 never
        // starts TLS on an active data connection (curl/curl#10669, fixed
        // in 8.0); ftplib covers active PROT P above. EPSV and PASV:
        assert_eq!(
            get(&["--disable-epsv"], "big.bin"),
            t.big,
            "{driver:?} PASV"
        );
        let list = String::from_utf8(get(&[], "")).unwrap();
        assert!(list.lines().any(|l| l.ends_with(" big.bin")), "{list}");
        let up = t.dir.join("up.bin");
        let data = Rng(11).bytes(1_200_000);
        std::fs::write(&up, &data).unwrap();
        let url = format!("{base}/up.bin");
        let mut a: Vec<&str> = tls.to_vec();
        a.extend_from_slice(&["-T", up.to_str().unwrap(), &url]);
        curl(&a);
        assert_eq!(std::fs::read(t.root.join("up.bin")).unwrap(), data);
        // A certificate curl does not trust is refused.
        let other = common::cert("ftp-tls-other", &["localhost"]);
        let st = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--ssl-reqd", "--cacert"])
            .arg(&other.cert)
            .arg(format!("{base}/hello.txt"))
            .output()
            .unwrap();
        assert!(
            !st.status.success(),
            "{driver:?}: untrusted certificate accepted"
        );
    }
}

/// `ftp-get`/`ftp-put`/`ftp-ls` with `ftpes://` (AUTH TLS, PBSZ 0, PROT P)
/// against pyftpdlib's TLS_FTPHandler, which requires TLS on both
/// channels; verified with `--ca`, refused without the right one.
#[test]
fn ftpes_commands_against_pyftpdlib_tls() {
    let c = common::cert("ftp-tls-pyftpd", &["localhost", "127.0.0.1"]);
    let other = common::cert("ftp-tls-pyftpd-other", &["localhost"]);
    let t = tree("pyftpd-tls");
    let srv = pyftpdlib_with(&t.root, &["tls", &c.cert, &c.key]);
    let base = format!("ftpes://alice:secret@localhost:{}", srv.port);
    let local = t.dir.join("local");
    std::fs::create_dir_all(&local).unwrap();
    let ca = c.cert.as_str();
    let (ok, out, err) = twill(&["ftp-ls", "--ca", ca, &format!("{base}/")]);
    assert!(ok, "{err}");
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("big.bin") && text.contains("sub"), "{text}");
    for active in [false, true] {
        let o = local.join(format!("big-{active}.bin"));
        let url = format!("{base}/big.bin");
        let mut a = vec!["ftp-get", "--ca", ca, "-o", o.to_str().unwrap()];
        if active {
            a.push("--active");
        }
        a.push(&url);
        let (ok, _, err) = twill(&a);
        assert!(ok, "active={active}: {err}");
        assert_eq!(std::fs::read(&o).unwrap(), t.big, "active={active}");
    }
    let up = local.join("up.bin");
    let data = Rng(5).bytes(2_500_000);
    std::fs::write(&up, &data).unwrap();
    let (ok, _, err) = twill(&[
        "ftp-put",
        "--ca",
        ca,
        up.to_str().unwrap(),
        &format!("{base}/up.bin"),
    ]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(t.root.join("up.bin")).unwrap(), data);
    // The wrong CA: refused before any login, one line.
    let (ok, _, err) = twill(&["ftp-get", "--ca", &other.cert, &format!("{base}/hello.txt")]);
    assert!(!ok && err.to_lowercase().contains("certificate"), "{err}");
    // A plain session is refused by this server (it requires TLS) and
    // --ca with ftp:// is an error, never a silent plaintext session.
    let plain = format!("ftp://alice:secret@localhost:{}/hello.txt", srv.port);
    let (ok, _, err) = twill(&["ftp-get", &plain]);
    assert!(!ok, "{err}");
    let (ok, _, err) = twill(&["ftp-get", "--ca", ca, &plain]);
    assert!(!ok && err.contains("ftpes://"), "{err}");
}

/// Our `ftpes://` client against `twill ftp --require-tls`.
#[test]
fn ftpes_commands_against_twill_ftp() {
    let c = common::cert("ftp-tls-self", &["localhost", "127.0.0.1"]);
    let t = tree("tls-self");
    let r = serve_tls(Driver::Mio, &t.root, &c, true);
    let base = format!("ftpes://alice:secret@localhost:{}", port(&r));
    let o = t.dir.join("big.out");
    let (ok, _, err) = twill(&[
        "ftp-get",
        "--ca",
        &c.cert,
        "-o",
        o.to_str().unwrap(),
        &format!("{base}/big.bin"),
    ]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(&o).unwrap(), t.big);
}
