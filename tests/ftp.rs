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
