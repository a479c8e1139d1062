//! The `twill` command's contract: bad flags, malformed endpoints, a busy
//! port or a missing socket directory give one line on stderr and exit
//! code 2 — never a panic.

use std::net::TcpListener;
use std::process::Command;

fn twill(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_twill"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_usage_error(args: &[&str], needle: &str) {
    let (code, _, err) = twill(args);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
}

#[test]
fn help_and_version() {
    let (code, out, _) = twill(&["--help"]);
    assert_eq!(code, 0);
    for sub in ["echo", "discard", "chargen", "daytime", "qotd", "chat"] {
        assert!(out.contains(sub), "--help lacks {sub}");
    }
    let (code, out, _) = twill(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("twill "), "{out}");
    let (code, out, _) = twill(&["echo", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--listen") && out.contains("--driver"));
}

#[test]
fn bad_flags_and_endpoints() {
    assert_usage_error(&["echo", "--colour"], "--colour");
    assert_usage_error(&["frobnicate"], "frobnicate");
    assert_usage_error(&["echo", "--driver", "gtk"], "gtk");
    assert_usage_error(&["echo", "--listen", "tcp:notaport"], "invalid port");
    assert_usage_error(
        &["echo", "--listen", "carrier-pigeon:1"],
        "unknown endpoint type",
    );
    assert_usage_error(&["echo", "--listen", "unix:/x:mode=9z"], "mode");
    assert_usage_error(&["--log-level", "[[", "echo"], "log-level");
}

#[test]
fn busy_port_is_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    for driver in ["std", "mio", "tokio"] {
        let ep = format!("tcp:{port}:interface=127.0.0.1");
        let (code, _, err) = twill(&["echo", "--listen", &ep, "--driver", driver]);
        assert_eq!(code, 2, "{driver}: {err}");
        assert!(err.contains("address already in use"), "{driver}: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{driver}: not one line: {err}"
        );
    }
}

#[test]
fn missing_socket_directory_is_one_line() {
    let (code, _, err) = twill(&["echo", "--listen", "unix:/nonexistent-dir-twill/s.sock"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn ssl_endpoint_with_unreadable_key_is_a_one_line_error() {
    let (code, _, err) = twill(&["echo", "--listen", "ssl:0:privateKey=k.pem"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read k.pem"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn passwd_writes_a_hash_that_verifies() {
    use std::io::Write;
    let path = std::env::temp_dir().join(format!("twill-cli-users-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut child = Command::new(env!("CARGO_BIN_EXE_twill"))
        .args([
            "passwd",
            "--users",
            path.to_str().expect("utf-8 path"),
            "alice",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn twill passwd");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"correct horse\n")
        .expect("write password");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "twill passwd failed: {out:?}");
    let text = std::fs::read_to_string(&path).expect("users file");
    assert!(text.starts_with("alice:$argon2id$"), "{text}");
    assert!(!text.contains("correct horse"));
    let users = twill::users::Users::load(&path).expect("load");
    assert!(users.verify("alice", b"correct horse"));
    assert!(!users.verify("alice", b"correct horse\n"));
    // A name that would break the line format is a usage error.
    let (code, _, err) = twill(&["passwd", "--users", path.to_str().expect("path"), "a:b"]);
    assert_ne!(code, 0);
    assert!(err.contains("user name"), "{err}");
    let _ = std::fs::remove_file(&path);
}
