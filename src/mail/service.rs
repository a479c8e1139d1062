//! The services behind `twill mail`: [`SmtpService`] stores what the
//! SMTP machine receives, [`Pop3Service`] serves the same Maildirs over
//! POP3. Both are written once against `twill_core::Service` and hosted
//! by every driver; every password check and every file access runs
//! through `Cx::spawn_blocking`, never on the event thread.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use twill_core::{Cx, Service};
use twill_pop3::{LoginFailure, MessageInfo, Proof};
use twill_smtp::{Delivery, ServerEvent};

use super::maildir::Maildir;

/// Who may log in and which mailboxes exist (the users file).
pub trait Accounts: Send + Sync + 'static {
    /// Whether `name` is a user.
    fn contains(&self, name: &str) -> bool;
    /// Whether `password` is `name`'s (slow on purpose: call it through
    /// `spawn_blocking`).
    fn verify(&self, name: &str, password: &[u8]) -> bool;
}

impl Accounts for crate::users::Users {
    fn contains(&self, name: &str) -> bool {
        crate::users::Users::contains(self, name)
    }
    fn verify(&self, name: &str, password: &[u8]) -> bool {
        crate::users::Users::verify(self, name, password)
    }
}

/// What both services share: the Maildir root, our name, the users, and
/// which POP3 maildrops are in use.
#[derive(Clone)]
pub struct Store {
    root: Arc<PathBuf>,
    hostname: Arc<str>,
    accounts: Arc<dyn Accounts>,
    locks: Arc<Mutex<HashSet<String>>>,
}

/// The mailbox of mail for other domains that authenticated clients
/// submit (kept for a relay; twill does not relay yet).
pub const OUTGOING: &str = ".outgoing";

impl Store {
    /// A store under `root` (created), answering as `hostname`; stray
    /// `tmp/` files of every mailbox under it are removed.
    pub fn new(root: &Path, hostname: &str, accounts: Arc<dyn Accounts>) -> Result<Store, String> {
        std::fs::create_dir_all(root).map_err(|e| format!("--maildir {}: {e}", root.display()))?;
        let entries =
            std::fs::read_dir(root).map_err(|e| format!("--maildir {}: {e}", root.display()))?;
        for e in entries.flatten() {
            if e.path().join("tmp").is_dir() {
                match Maildir::open(&e.path()).and_then(|m| m.clean_tmp()) {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(
                        "removed {n} partial deliveries from {}",
                        e.path().join("tmp").display()
                    ),
                    Err(err) => return Err(format!("{}: {err}", e.path().display())),
                }
            }
        }
        Ok(Store {
            root: Arc::new(root.to_path_buf()),
            hostname: hostname.into(),
            accounts,
            locks: Arc::new(Mutex::new(HashSet::new())),
        })
    }

    /// The user a local part names: itself, or lowercased.
    pub fn user_for(&self, local: &str) -> Option<String> {
        if self.accounts.contains(local) {
            return Some(local.to_string());
        }
        let lower = local.to_ascii_lowercase();
        self.accounts.contains(&lower).then_some(lower)
    }

    /// Whether `local` is a mailbox here (for the SMTP machine's RCPT check).
    pub fn has_mailbox(&self, local: &str) -> bool {
        self.user_for(local).is_some()
    }

    /// The Maildir of `user` (a user name, `postmaster` or [`OUTGOING`]).
    pub fn maildir(&self, user: &str) -> std::io::Result<Maildir> {
        Maildir::open(&self.root.join(user))
    }

    /// The users.
    pub fn accounts(&self) -> &Arc<dyn Accounts> {
        &self.accounts
    }

    fn lock(&self, user: &str) -> bool {
        self.locks
            .lock()
            .map(|mut l| l.insert(user.to_string()))
            .unwrap_or(false)
    }

    fn unlock(&self, user: &str) {
        if let Ok(mut l) = self.locks.lock() {
            l.remove(user);
        }
    }
}

/// Results of the SMTP service's blocking work.
#[derive(Debug)]
pub enum SmtpDone {
    /// A password check.
    Auth(bool),
    /// A delivery: the id, or why not.
    Stored(Result<String, String>),
}

/// Stores each message the SMTP machine receives in its recipients'
/// Maildirs (behind a `Return-Path` and a `Received` line) before the
/// machine answers 250.
pub struct SmtpService {
    store: Store,
}

impl SmtpService {
    /// The service of one connection.
    pub fn new(store: Store) -> Self {
        SmtpService { store }
    }
}

/// The Maildirs a message goes to: each recipient's user (once), local
/// postmaster, or the outgoing queue for other domains.
fn mailboxes(
    store: &Store,
    m: &twill_smtp::Message,
    domain_is_local: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for to in &m.to {
        let (local, domain) = match to.rfind('@') {
            Some(k) => (&to[..k], &to[k + 1..]),
            None => (to.as_str(), ""),
        };
        let user = if domain.is_empty() || domain_is_local(domain) {
            store
                .user_for(local)
                .unwrap_or_else(|| "postmaster".to_string())
        } else {
            OUTGOING.to_string()
        };
        if !v.contains(&user) {
            v.push(user);
        }
    }
    v
}

/// The trace header lines put before a stored message (RFC 5321 §4.4).
fn trace_headers(host: &str, m: &twill_smtp::Message, id: &str) -> String {
    let with = match (m.esmtp, m.secured, m.authenticated.is_some()) {
        (false, _, _) => "SMTP",
        (true, false, false) => "ESMTP",
        (true, true, false) => "ESMTPS",
        (true, false, true) => "ESMTPA",
        (true, true, true) => "ESMTPSA",
    };
    let with = if m.smtputf8 {
        format!("UTF8{with}")
    } else {
        with.to_string()
    };
    let date = m.received.to_civil().http_date();
    let helo: String = m.helo.chars().filter(|c| !c.is_control()).collect();
    format!(
        "Return-Path: <{}>\r\nReceived: from {} ({}) by {} with {} id {};\r\n\t{}\r\n",
        m.from, helo, m.peer, host, with, id, date
    )
}

/// Delivers one message to `boxes` (blocking).
fn deliver(store: &Store, boxes: &[String], m: &twill_smtp::Message) -> Result<String, String> {
    let id = super::maildir::unique_name(&store.hostname);
    let trace = trace_headers(&store.hostname, m, &id);
    for b in boxes {
        let md = store.maildir(b).map_err(|e| format!("mailbox {b}: {e}"))?;
        md.deliver(&store.hostname, &[trace.as_bytes(), &m.data])
            .map_err(|e| format!("mailbox {b}: {e}"))?;
    }
    Ok(id)
}

impl Service<twill_smtp::Server> for SmtpService {
    type Done = SmtpDone;

    fn on_event(&mut self, cx: &mut Cx<'_, twill_smtp::Server, SmtpDone>, event: ServerEvent) {
        match event {
            ServerEvent::Auth { credentials, .. } => {
                let accounts = self.store.accounts.clone();
                // An authorization identity other than the user's own is
                // not something this server grants.
                let same =
                    credentials.authzid.is_empty() || credentials.authzid == credentials.username;
                cx.spawn_blocking(move || {
                    SmtpDone::Auth(
                        same && accounts.verify(&credentials.username, &credentials.password),
                    )
                });
            }
            ServerEvent::Message(m) => {
                let store = self.store.clone();
                let cfg = cx.machine().config().clone();
                let local = move |d: &str| {
                    if cfg.local_domains.is_empty() {
                        d.eq_ignore_ascii_case(&cfg.hostname)
                    } else {
                        cfg.local_domains.iter().any(|x| x.eq_ignore_ascii_case(d))
                    }
                };
                let boxes = mailboxes(&store, &m, &local);
                tracing::debug!(from = %m.from, to = ?m.to, size = m.data.len(), "message");
                cx.spawn_blocking(move || SmtpDone::Stored(deliver(&store, &boxes, &m)));
            }
            ServerEvent::Violation(v) => tracing::info!(%v, "SMTP client violation"),
            _ => {}
        }
    }

    fn on_done(&mut self, cx: &mut Cx<'_, twill_smtp::Server, SmtpDone>, done: SmtpDone) {
        let r = match done {
            SmtpDone::Auth(ok) => cx.machine().answer_auth(ok),
            SmtpDone::Stored(Ok(id)) => cx.machine().answer_message(Delivery::Stored(id)),
            SmtpDone::Stored(Err(e)) => {
                tracing::error!("delivery failed: {e}");
                cx.machine()
                    .answer_message(Delivery::TempFail("Local error in processing".into()))
            }
        };
        if let Err(e) = r {
            tracing::error!("SMTP answer refused: {e}");
        }
    }
}

/// Results of the POP3 service's blocking work.
#[derive(Debug)]
pub enum Pop3Done {
    /// A login: the maildrop's messages, or why not.
    Login(Result<Vec<super::maildir::Entry>, LoginFailure>, String),
    /// A message's bytes.
    Read(Result<Bytes, String>),
    /// Deletions done.
    Removed(Result<(), String>),
}

/// Serves each user's Maildir over POP3; one session per maildrop.
pub struct Pop3Service {
    store: Store,
    user: Option<String>,
    entries: Vec<super::maildir::Entry>,
}

impl Pop3Service {
    /// The service of one connection.
    pub fn new(store: Store) -> Self {
        Pop3Service {
            store,
            user: None,
            entries: Vec::new(),
        }
    }

    fn release(&mut self) {
        if let Some(u) = self.user.take() {
            self.store.unlock(&u);
        }
    }
}

impl Drop for Pop3Service {
    fn drop(&mut self) {
        self.release();
    }
}

impl Service<twill_pop3::Server> for Pop3Service {
    type Done = Pop3Done;

    fn on_event(
        &mut self,
        cx: &mut Cx<'_, twill_pop3::Server, Pop3Done>,
        event: twill_pop3::ServerEvent,
    ) {
        use twill_pop3::ServerEvent as E;
        match event {
            E::Login { user, proof } => {
                let store = self.store.clone();
                cx.spawn_blocking(move || {
                    // APOP needs the secret in the clear, which the users
                    // file never holds; it is not offered.
                    let ok = match &proof {
                        Proof::Password(p) => store.accounts.verify(&user, p),
                        _ => false,
                    };
                    if !ok {
                        return Pop3Done::Login(Err(LoginFailure::BadCredentials), user);
                    }
                    if !store.lock(&user) {
                        return Pop3Done::Login(Err(LoginFailure::InUse), user);
                    }
                    let listed = store.maildir(&user).and_then(|m| m.list());
                    match listed {
                        Ok(list) => Pop3Done::Login(Ok(list), user),
                        Err(e) => {
                            store.unlock(&user);
                            Pop3Done::Login(Err(LoginFailure::Temporary(e.to_string())), user)
                        }
                    }
                });
            }
            E::Retrieve { index, .. } => {
                let path = self.entries.get(index).map(|e| e.path.clone());
                cx.spawn_blocking(move || {
                    Pop3Done::Read(match path {
                        Some(p) => std::fs::read(&p)
                            .map(Bytes::from)
                            .map_err(|e| e.to_string()),
                        None => Err("no such message".into()),
                    })
                });
            }
            E::Update { user, deleted, .. } => {
                let paths: Vec<PathBuf> = deleted
                    .iter()
                    .filter_map(|i| self.entries.get(*i).map(|e| e.path.clone()))
                    .collect();
                let store = self.store.clone();
                cx.spawn_blocking(move || {
                    Pop3Done::Removed(
                        store
                            .maildir(&user)
                            .and_then(|m| m.remove(&paths))
                            .map_err(|e| e.to_string()),
                    )
                });
            }
            E::Ended { .. } => self.release(),
            E::Violation(v) => tracing::info!(%v, "POP3 client violation"),
            _ => {}
        }
    }

    fn on_done(&mut self, cx: &mut Cx<'_, twill_pop3::Server, Pop3Done>, done: Pop3Done) {
        let r = match done {
            Pop3Done::Login(Ok(entries), user) => {
                let info = entries
                    .iter()
                    .map(|e| MessageInfo {
                        size: e.size,
                        uid: e.uid.clone(),
                    })
                    .collect();
                self.entries = entries;
                self.user = Some(user);
                let r = cx.machine().answer_login(Ok(info));
                if cx.machine().user().is_none() {
                    // The connection went away meanwhile.
                    self.release();
                }
                r
            }
            Pop3Done::Login(Err(f), _) => cx.machine().answer_login(Err(f)),
            Pop3Done::Read(r) => cx.machine().answer_retrieve(r),
            Pop3Done::Removed(r) => cx.machine().answer_update(r),
        };
        if let Err(e) = r {
            tracing::error!("POP3 answer refused: {e}");
        }
    }
}
