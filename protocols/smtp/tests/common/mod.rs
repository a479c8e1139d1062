//! A server that answers the application's questions at once, so scripts
//! and vectors can run against the bare machine: passwords from a table,
//! every message stored (and kept for assertions).

#![allow(dead_code)]

use std::sync::Arc;

use twill_core::{Input, Machine, Now, Output};
use twill_smtp::{Delivery, Server, ServerConfig, ServerEvent};

/// A `Server` plus an application that answers inside `poll_output`.
pub struct Auto {
    pub server: Server,
    pub passwords: Vec<(String, Vec<u8>)>,
    pub refuse_messages: bool,
}

impl Auto {
    pub fn new(config: ServerConfig, passwords: &[(&str, &str)]) -> Auto {
        Auto {
            server: Server::new(config),
            passwords: passwords
                .iter()
                .map(|(u, p)| (u.to_string(), p.as_bytes().to_vec()))
                .collect(),
            refuse_messages: false,
        }
    }
}

impl Machine for Auto {
    type Event = ServerEvent;
    type Error = twill_smtp::Error;
    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Self::Error> {
        self.server.handle_input(now, input)
    }
    fn handle_timeout(&mut self, now: Now) {
        self.server.handle_timeout(now)
    }
    fn poll_output(&mut self) -> Output<ServerEvent> {
        let out = self.server.poll_output();
        match &out {
            Output::Event(ServerEvent::Auth { credentials, .. }) => {
                let ok = self
                    .passwords
                    .iter()
                    .any(|(u, p)| *u == credentials.username && *p == credentials.password);
                self.server.answer_auth(ok).expect("waiting for auth");
            }
            Output::Event(ServerEvent::Message(m)) => {
                let d = if self.refuse_messages {
                    Delivery::TempFail("disk full".into())
                } else {
                    Delivery::Stored(format!("m{}", m.seq))
                };
                self.server.answer_message(d).expect("waiting for message");
            }
            _ => {}
        }
        out
    }
}

/// A config: hostname, local domains, known users.
pub fn config(hostname: &str, domains: &[&str], users: Option<&[&str]>) -> ServerConfig {
    let recipients = users.map(|u| {
        let u: Vec<String> = u.iter().map(|s| s.to_ascii_lowercase()).collect();
        Arc::new(move |l: &str| u.contains(&l.to_ascii_lowercase())) as twill_smtp::RecipientCheck
    });
    ServerConfig {
        hostname: hostname.into(),
        local_domains: domains.iter().map(|d| d.to_string()).collect(),
        recipients,
        ..ServerConfig::default()
    }
}

/// Reply codes of a byte stream of replies.
pub fn codes(bytes: &[u8]) -> Vec<u16> {
    let mut p = twill_smtp::codec::ReplyParser::new();
    let mut v = Vec::new();
    for l in bytes.split_inclusive(|b| *b == b'\n') {
        match p.line(l) {
            Ok(Some(r)) => v.push(r.code),
            Ok(None) => {}
            Err(e) => panic!("bad reply line {:?}: {e}", String::from_utf8_lossy(l)),
        }
    }
    v
}
