//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through
//! the fuzz target bodies on stable, so every seed — and every crash input
//! saved there after a fix — stays a regression test in CI. Fuzzing itself
//! (nightly, libFuzzer) is `fuzz/run.sh TARGET [SECONDS]`.

#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::path::PathBuf;

/// Runs `body` over every file of `fuzz/corpus/<name>/`; fails loudly if
/// the directory is missing or empty, so a renamed target cannot silently
/// stop being replayed.
fn replay(name: &str, body: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(name);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {} is missing: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "corpus directory {} is empty",
        dir.display()
    );
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let run = std::panic::catch_unwind(|| body(&data));
        if run.is_err() {
            panic!("fuzz target {name} fails on {}", f.display());
        }
    }
    eprintln!("{name}: {} corpus files replayed", files.len());
}

#[test]
fn lines_corpus() {
    replay("lines", targets::lines);
}

#[test]
fn netstring_corpus() {
    replay("netstring", targets::netstring);
}

#[test]
fn prefixed_corpus() {
    replay("prefixed", targets::prefixed);
}

#[test]
fn framed_machine_corpus() {
    replay("framed_machine", targets::framed_machine);
}

#[test]
fn chat_machine_corpus() {
    replay("chat_machine", targets::chat_machine);
}

#[test]
fn http_request_corpus() {
    replay("http_request", targets::http_request);
}

#[test]
fn http_response_corpus() {
    replay("http_response", targets::http_response);
}

#[test]
fn http_chunked_corpus() {
    replay("http_chunked", targets::http_chunked);
}

#[test]
fn http_server_machine_corpus() {
    replay("http_server_machine", targets::http_server_machine);
}

#[test]
fn tls_server_corpus() {
    replay("tls_server", targets::tls_server);
}

#[test]
fn irc_message_corpus() {
    replay("irc_message", targets::irc_message);
}

#[test]
fn irc_server_machine_corpus() {
    replay("irc_server_machine", targets::irc_server_machine);
}

#[test]
fn mail_commands_corpus() {
    replay("mail_commands", targets::mail_commands);
}

#[test]
fn smtp_unstuff_corpus() {
    replay("smtp_unstuff", targets::smtp_unstuff);
}

#[test]
fn smtp_server_machine_corpus() {
    replay("smtp_server_machine", targets::smtp_server_machine);
}

#[test]
fn pop3_server_machine_corpus() {
    replay("pop3_server_machine", targets::pop3_server_machine);
}

#[test]
fn ftp_command_corpus() {
    replay("ftp_command", targets::ftp_command);
}

#[test]
fn ftp_reply_corpus() {
    replay("ftp_reply", targets::ftp_reply);
}

#[test]
fn ftp_server_machine_corpus() {
    replay("ftp_server_machine", targets::ftp_server_machine);
}

#[test]
fn websocket_frames_corpus() {
    replay("websocket_frames", targets::websocket_frames);
}

#[test]
fn websocket_machine_corpus() {
    replay("websocket_machine", targets::websocket_machine);
}

#[test]
fn websocket_inflate_corpus() {
    replay("websocket_inflate", targets::websocket_inflate);
}
