//! A POP3 server with an application that answers at once from a table:
//! users, passwords, maildrops of synthetic messages of given sizes.

#![allow(dead_code)]

use bytes::Bytes;
use twill_core::{Input, Machine, Now, Output};
use twill_pop3::{
    apop_digest, LoginFailure, MessageInfo, Proof, Server, ServerConfig, ServerEvent,
};

/// A message of exactly `size` octets (at least 20): a header, a blank
/// line, a line starting with a dot, and padding.
pub fn message(n: usize, size: usize) -> Bytes {
    let mut m = format!("Subject: m{n}\r\n\r\n.dot line\r\n").into_bytes();
    while m.len() + 7 <= size {
        m.extend_from_slice(b"line.\r\n");
    }
    let pad = size.saturating_sub(m.len() + 2);
    m.resize(m.len() + pad, b'x');
    if m.len() + 2 <= size {
        m.extend_from_slice(b"\r\n");
    }
    assert_eq!(m.len(), size, "message {n}");
    Bytes::from(m)
}

pub struct Drop {
    pub user: String,
    pub password: String,
    pub messages: Vec<Bytes>,
    pub locked: bool,
}

pub struct Auto {
    pub server: Server,
    pub drops: Vec<Drop>,
    pub user: Option<usize>,
    pub removed: Vec<String>,
}

impl Auto {
    pub fn new(server: Server, drops: Vec<Drop>) -> Auto {
        Auto {
            server,
            drops,
            user: None,
            removed: Vec::new(),
        }
    }

    /// `user:password:size,size…` entries.
    pub fn from_spec(config: ServerConfig, spec: &str, locked: &[&str]) -> Auto {
        let drops = spec
            .split(' ')
            .map(|e| {
                let mut p = e.splitn(3, ':');
                let user = p.next().unwrap().to_string();
                let password = p.next().unwrap().to_string();
                let messages = p
                    .next()
                    .unwrap()
                    .split(',')
                    .enumerate()
                    .map(|(i, s)| message(i + 1, s.parse().unwrap()))
                    .collect();
                let locked = locked.contains(&user.as_str());
                Drop {
                    user,
                    password,
                    messages,
                    locked,
                }
            })
            .collect();
        Auto::new(Server::new(config, twill_core::rng::seeded(7)), drops)
    }
}

impl Machine for Auto {
    type Event = ServerEvent;
    type Error = twill_pop3::Error;
    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Self::Error> {
        self.server.handle_input(now, input)
    }
    fn handle_timeout(&mut self, now: Now) {
        self.server.handle_timeout(now)
    }
    fn poll_output(&mut self) -> Output<ServerEvent> {
        let out = self.server.poll_output();
        match &out {
            Output::Event(ServerEvent::Login { user, proof }) => {
                let found = self.drops.iter().position(|d| d.user == *user);
                let ok = found.is_some_and(|i| {
                    let d = &self.drops[i];
                    match proof {
                        Proof::Password(p) => p == d.password.as_bytes(),
                        Proof::Apop { timestamp, digest } => {
                            apop_digest(timestamp, d.password.as_bytes()) == *digest
                        }
                        _ => false,
                    }
                });
                let r = match found {
                    Some(i) if ok && self.drops[i].locked => Err(LoginFailure::InUse),
                    Some(i) if ok => {
                        self.user = Some(i);
                        Ok(self.drops[i]
                            .messages
                            .iter()
                            .enumerate()
                            .map(|(k, m)| MessageInfo {
                                size: m.len() as u64,
                                uid: format!("uid-{}", k + 1),
                            })
                            .collect())
                    }
                    _ => Err(LoginFailure::BadCredentials),
                };
                self.server.answer_login(r).expect("waiting for login");
            }
            Output::Event(ServerEvent::Retrieve { index, .. }) => {
                let m = self.drops[self.user.unwrap()].messages[*index].clone();
                self.server.answer_retrieve(Ok(m)).expect("waiting");
            }
            Output::Event(ServerEvent::Update { uids, .. }) => {
                self.removed.extend(uids.iter().cloned());
                self.server.answer_update(Ok(())).expect("waiting");
            }
            _ => {}
        }
        out
    }
}

/// One response as the vector runner compares it.
#[derive(Debug, PartialEq, Eq)]
pub struct Resp {
    pub status: String,
    /// Text compared for STAT/LIST n/UIDL n (numbers per the RFC grammar).
    pub text: Option<String>,
    /// Body lines compared for LIST/UIDL without argument.
    pub body: Option<Vec<String>>,
}

/// Splits a server's output into responses, knowing the client's lines
/// (which decide single- or multi-line).
pub fn responses(server: &[u8], client: &[u8]) -> Vec<Resp> {
    let mut lines = server.split_inclusive(|b| *b == b'\n').map(|l| {
        String::from_utf8_lossy(l)
            .trim_end_matches(['\r', '\n'])
            .to_string()
    });
    let mut out = Vec::new();
    let next_status = |lines: &mut dyn Iterator<Item = String>| -> Option<(String, String)> {
        let l = lines.next()?;
        let (st, text) = if let Some(t) = l.strip_prefix("+OK") {
            ("+OK", t.trim_start().to_string())
        } else if let Some(t) = l.strip_prefix("-ERR") {
            ("-ERR", t.trim_start().to_string())
        } else if let Some(t) = l.strip_prefix('+') {
            ("+", t.trim_start().to_string())
        } else {
            panic!("not a status line: {l:?}")
        };
        Some((st.to_string(), text))
    };
    // The greeting.
    if let Some((s, _)) = next_status(&mut lines) {
        out.push(Resp {
            status: s,
            text: None,
            body: None,
        });
    }
    let mut in_sasl = false;
    for cmd in client.split_inclusive(|b| *b == b'\n').map(|l| {
        String::from_utf8_lossy(l)
            .trim_end_matches(['\r', '\n'])
            .to_string()
    }) {
        let Some((status, text)) = next_status(&mut lines) else {
            break;
        };
        let upper = cmd.to_ascii_uppercase();
        let words: Vec<&str> = upper.split(' ').collect();
        let multi = !in_sasl
            && status == "+OK"
            && (matches!(words[0], "CAPA" | "RETR" | "TOP")
                || (matches!(words[0], "LIST" | "UIDL" | "AUTH") && words.len() == 1));
        in_sasl = status == "+";
        let mut body = Vec::new();
        if multi {
            loop {
                let l = lines.next().expect("multi-line response ends with '.'");
                if l == "." {
                    break;
                }
                body.push(l);
            }
        }
        let compare_text = status == "+OK"
            && (words[0] == "STAT" || (matches!(words[0], "LIST" | "UIDL") && words.len() == 2));
        let compare_body = multi && matches!(words[0], "LIST" | "UIDL");
        out.push(Resp {
            status,
            text: compare_text.then_some(text),
            body: compare_body.then_some(body),
        });
    }
    assert!(
        lines.next().is_none(),
        "server sent more than the client asked for"
    );
    out
}
