//! [`Client`]: the IRC client machine, for one connection.
//!
//! | input | effect |
//! |---|---|
//! | `Opened` / `Accepted` | `CAP LS 302`, `PASS`, `NICK`, `USER`; [`ClientEvent::Connected`] |
//! | `CAP * LS` | `CAP REQ` for the wanted capabilities the server has (and `sasl` with credentials), else `CAP END` |
//! | `CAP ACK`/`NAK` | SASL PLAIN (`AUTHENTICATE`) if acked, then `CAP END` |
//! | `433`/`432`/`436` before welcome | the next fallback nick (`nick_`, `nick__`, … then digits) |
//! | `001` | [`ClientEvent::Registered`]; queued commands may flow |
//! | `PING` | `PONG` at once (never rate-limited) |
//! | CTCP VERSION/PING/CLIENTINFO to us | a NOTICE reply, through the rate limit |
//! | JOIN/PART/KICK/QUIT/NICK/MODE/353/366 | channel and member tracking |
//! | every message | [`ClientEvent::Message`] after tracking |
//! | silence | `PING` after [`ClientConfig::ping_interval`]; `Close::Abort` and [`ClientEvent::PingTimeout`] after [`ClientConfig::ping_timeout`] more |
//! | `Eof` / `Closed` | [`ClientEvent::Disconnected`] |
//!
//! Commands after registration go through a token bucket on `now`
//! ([`ClientConfig::burst`] lines at once, then one per
//! [`ClientConfig::interval`]), so a script cannot flood itself off the
//! network. [`Client::privmsg`] splits long text at the 512-byte limit
//! (counting the source prefix the server will add) without breaking a
//! UTF-8 character.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bytes::Bytes;
use twill_core::{
    Close, ConnId, Duration, IdAllocator, Input, Instant, Machine, Now, Open, OutQueue, Output,
};

use crate::codec::message::Limits;
use crate::codec::{ctcp, CaseMapping, Encoder, Isupport, LineReader, Message, MAX_BODY};
use crate::error::Error;

/// How the client behaves.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The nick to ask for.
    pub nick: String,
    /// The user name.
    pub user: String,
    /// The real name.
    pub realname: String,
    /// A server password (`PASS`).
    pub password: Option<String>,
    /// SASL PLAIN credentials: account and password.
    pub sasl: Option<(String, String)>,
    /// Capabilities to request when the server has them.
    pub caps: Vec<String>,
    /// Send a `PING` after this much silence from the server.
    pub ping_interval: Duration,
    /// Give up on the server this long after that `PING`.
    pub ping_timeout: Duration,
    /// Lines that may go out at once after registration.
    pub burst: u32,
    /// After the burst, one line per this interval.
    pub interval: Duration,
    /// Most lines waiting for the rate limit.
    pub max_pending: usize,
    /// How many fallback nicks to try before giving up.
    pub max_nick_tries: usize,
    /// The answer to CTCP VERSION; `None` ignores VERSION requests.
    /// CTCP PING is always echoed and CLIENTINFO lists what we answer.
    pub ctcp_version: Option<String>,
}

impl ClientConfig {
    /// Defaults for `nick`.
    pub fn new(nick: &str) -> Self {
        ClientConfig {
            nick: nick.into(),
            user: nick.into(),
            realname: nick.into(),
            password: None,
            sasl: None,
            caps: ["message-tags", "server-time", "multi-prefix"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ping_interval: Duration::from_secs(120),
            ping_timeout: Duration::from_secs(60),
            burst: 5,
            interval: Duration::from_millis(500),
            max_pending: 10_000,
            max_nick_tries: 10,
            ctcp_version: Some(concat!("twill-irc ", env!("CARGO_PKG_VERSION")).into()),
        }
    }
}

/// What the client tells the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The connection is up; registration started.
    Connected,
    /// The server welcomed us under this nick.
    Registered {
        /// Our nick.
        nick: String,
    },
    /// Capabilities the server acknowledged.
    CapsAcked {
        /// Their names.
        caps: Vec<String>,
    },
    /// SASL finished: `true` if we are logged in.
    Sasl {
        /// Whether authentication succeeded.
        success: bool,
    },
    /// Our nick was taken; we asked for this one instead.
    NickFallback {
        /// The nick we try now.
        nick: String,
    },
    /// A message from the server (after the machine's own handling).
    Message(Message),
    /// The server went silent past the ping timeout; the connection is
    /// being aborted.
    PingTimeout,
    /// The connection ended.
    Disconnected,
    /// Opening the connection failed.
    ConnectFailed {
        /// Why.
        error: twill_core::OpenError,
    },
}

/// One channel we are in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelState {
    /// The name as the server spells it.
    pub name: String,
    /// Folded nick → (nick, prefix symbols such as `@`).
    pub members: BTreeMap<Vec<u8>, (String, String)>,
    /// The topic, when known.
    pub topic: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reg {
    Idle,
    CapLs,
    CapReq,
    Sasl,
    Welcome,
    Done,
}

/// The IRC client machine. See the [module docs](self).
pub struct Client {
    cfg: ClientConfig,
    conn: Option<ConnId>,
    ids: IdAllocator,
    reader: LineReader,
    out: OutQueue<ClientEvent>,
    reg: Reg,
    nick: String,
    nick_tries: usize,
    /// The source prefix the server puts on our messages, once known.
    source_len: Option<usize>,
    offered: Vec<String>,
    /// The mechanisms of `sasl=…` in `CAP LS` (302); empty: not listed.
    sasl_mechs: Vec<String>,
    acked: Vec<String>,
    /// Channels whose 353 list is being received: the first 353 after a
    /// 366 starts the member list afresh, so a second NAMES replaces it.
    names_open: alloc::collections::BTreeSet<Vec<u8>>,
    isupport: Isupport,
    channels: BTreeMap<Vec<u8>, ChannelState>,
    /// Lines held back by the rate limit.
    pending: VecDeque<Bytes>,
    /// Token bucket (GCRA): when the next line is due.
    send_at: Instant,
    now: Now,
    last_rx: Instant,
    ping_sent: bool,
    closing: bool,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("nick", &self.nick)
            .field("reg", &self.reg)
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client that registers as configured once its connection opens.
    pub fn new(cfg: ClientConfig) -> Self {
        let nick = cfg.nick.clone();
        Client {
            cfg,
            conn: None,
            ids: IdAllocator::for_machine(),
            reader: LineReader::default(),
            out: OutQueue::new(),
            reg: Reg::Idle,
            nick,
            nick_tries: 0,
            source_len: None,
            offered: Vec::new(),
            sasl_mechs: Vec::new(),
            acked: Vec::new(),
            names_open: alloc::collections::BTreeSet::new(),
            isupport: Isupport::new(),
            channels: BTreeMap::new(),
            pending: VecDeque::new(),
            send_at: Instant::ZERO,
            now: Now::default(),
            last_rx: Instant::ZERO,
            ping_sent: false,
            closing: false,
        }
    }

    // --- getters ---

    /// Our current nick.
    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// Whether the server welcomed us.
    pub fn is_registered(&self) -> bool {
        self.reg == Reg::Done
    }

    /// Capabilities the server acknowledged.
    pub fn caps(&self) -> &[String] {
        &self.acked
    }

    /// What the server announced in 005.
    pub fn isupport(&self) -> &Isupport {
        &self.isupport
    }

    /// The channels we are in.
    pub fn channels(&self) -> impl Iterator<Item = &ChannelState> {
        self.channels.values()
    }

    /// One channel, by any case of its name.
    pub fn channel(&self, name: &str) -> Option<&ChannelState> {
        self.channels.get(&self.casemap().fold(name.as_bytes()))
    }

    /// Lines waiting for the rate limit.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn casemap(&self) -> CaseMapping {
        self.isupport.casemapping()
    }

    // --- commands ---

    /// Asks the driver to connect to `host:port`; returns the id. (A
    /// driver that opened the connection itself reports `Opened` instead.)
    pub fn connect(&mut self, host: &str, port: u16) -> ConnId {
        let conn = self.ids.next_id();
        self.out.push(Output::Open {
            conn,
            how: Open::Connect {
                host: host.into(),
                port,
                timeout: None,
            },
        });
        conn
    }

    /// Joins a channel (with a key if given).
    ///
    /// # Errors
    /// [`Error::Encode`] for a name or key with spaces, CR, LF or NUL.
    pub fn join(&mut self, channel: &str, key: Option<&str>) -> Result<(), Error> {
        if channel.is_empty() || channel.contains(' ') || key.is_some_and(|k| k.contains(' ')) {
            return Err(Error::Invalid("a channel name or key with a space"));
        }
        let mut params: Vec<&[u8]> = alloc::vec![channel.as_bytes()];
        if let Some(k) = key {
            params.push(k.as_bytes());
        }
        self.command("JOIN", &params, false)
    }

    /// Leaves a channel.
    ///
    /// # Errors
    /// [`Error::Encode`] for bad text.
    pub fn part(&mut self, channel: &str, reason: Option<&str>) -> Result<(), Error> {
        match reason {
            Some(r) => self.command("PART", &[channel.as_bytes(), r.as_bytes()], true),
            None => self.command("PART", &[channel.as_bytes()], false),
        }
    }

    /// Sends text to a channel or nick, split into as many PRIVMSGs as the
    /// 512-byte limit needs (never inside a UTF-8 character).
    ///
    /// # Errors
    /// [`Error::Encode`] if the text holds CR, LF or NUL or the target is
    /// malformed; nothing is sent then.
    pub fn privmsg(&mut self, target: &str, text: &str) -> Result<(), Error> {
        self.split_send("PRIVMSG", target, text.as_bytes())
    }

    /// Like [`privmsg`](Self::privmsg) with NOTICE.
    ///
    /// # Errors
    /// As `privmsg`.
    pub fn notice(&mut self, target: &str, text: &str) -> Result<(), Error> {
        self.split_send("NOTICE", target, text.as_bytes())
    }

    /// A CTCP ACTION (`/me`).
    ///
    /// # Errors
    /// As `privmsg`.
    pub fn action(&mut self, target: &str, text: &str) -> Result<(), Error> {
        let body = ctcp::action(text.as_bytes());
        self.command("PRIVMSG", &[target.as_bytes(), &body], true)
    }

    /// Sets a channel's topic.
    ///
    /// # Errors
    /// As `privmsg`.
    pub fn topic(&mut self, channel: &str, topic: &str) -> Result<(), Error> {
        self.command("TOPIC", &[channel.as_bytes(), topic.as_bytes()], true)
    }

    /// Changes our nick.
    ///
    /// # Errors
    /// [`Error::Encode`] for a nick with spaces.
    pub fn set_nick(&mut self, nick: &str) -> Result<(), Error> {
        self.command("NICK", &[nick.as_bytes()], false)
    }

    /// Sends a raw line (`/cmd` lines of a line-mode client). It is parsed
    /// first, so it cannot smuggle a second command.
    ///
    /// # Errors
    /// [`Error::Invalid`] if it is not one well-formed message.
    pub fn raw(&mut self, line: &str) -> Result<(), Error> {
        let msg = Message::parse(Bytes::copy_from_slice(line.as_bytes()))
            .map_err(|_| Error::Invalid("not an IRC message"))?;
        msg.encode(&mut self.out.buf)?;
        let b = self.out.buf.split().freeze();
        self.queue(b, msg.is("PONG"));
        Ok(())
    }

    /// Says goodbye and closes once the server has seen it.
    ///
    /// # Errors
    /// [`Error::Encode`] for bad text.
    pub fn quit(&mut self, reason: &str) -> Result<(), Error> {
        // QUIT jumps the rate-limit queue: the user wants out now.
        let mut e = Encoder::new(&mut self.out.buf);
        e.command("QUIT").trailing(reason.as_bytes());
        e.finish()?;
        let b = self.out.buf.split().freeze();
        self.queue(b, true);
        Ok(())
    }

    // --- inside ---

    fn command(&mut self, cmd: &str, params: &[&[u8]], text_last: bool) -> Result<(), Error> {
        let mut e = Encoder::new(&mut self.out.buf);
        e.command(cmd);
        let n = params.len();
        for (i, p) in params.iter().enumerate() {
            if i + 1 == n && text_last {
                e.trailing(p);
            } else if i + 1 == n {
                e.param_last(p);
            } else {
                e.param(p);
            }
        }
        e.finish()?;
        let b = self.out.buf.split().freeze();
        self.queue(b, false);
        Ok(())
    }

    fn split_send(&mut self, cmd: &str, target: &str, text: &[u8]) -> Result<(), Error> {
        if text.iter().any(|b| matches!(b, 0 | b'\r' | b'\n')) {
            return Err(Error::Encode(crate::EncodeError::ForbiddenByte {
                part: crate::error::Part::Param,
                byte: 0,
            }));
        }
        // Room for the text: 512 minus CRLF, the command, target, spaces
        // and colon, and the source prefix the server will put in front
        // (`:nick!user@host `; a generous guess until 001 told us).
        let prefix = self
            .source_len
            .unwrap_or(self.nick.len() + self.cfg.user.len() + 64 + 4);
        let overhead = 2 + cmd.len() + 1 + target.len() + 2 + prefix;
        let room = MAX_BODY.saturating_sub(overhead).max(16);
        let mut rest = text;
        loop {
            let cut = split_point(rest, room);
            let (chunk, tail) = rest.split_at(cut);
            self.command(cmd, &[target.as_bytes(), chunk], true)?;
            rest = tail;
            if rest.is_empty() {
                return Ok(());
            }
        }
    }

    /// Transmits now or queues behind the rate limit. `urgent` lines
    /// (PONG, QUIT, registration) skip it.
    fn queue(&mut self, line: Bytes, urgent: bool) {
        let Some(conn) = self.conn else {
            if self.pending.len() < self.cfg.max_pending {
                self.pending.push_back(line);
            }
            return;
        };
        if urgent || self.reg != Reg::Done {
            self.out.transmit(conn, line);
            return;
        }
        if self.pending.is_empty() && self.bucket_allows() {
            self.charge();
            self.out.transmit(conn, line);
        } else if self.pending.len() < self.cfg.max_pending {
            self.pending.push_back(line);
        }
    }

    fn bucket_allows(&self) -> bool {
        let now = self.now.mono;
        let allowance = self.cfg.interval * self.cfg.burst.max(1);
        self.send_at.max(now).saturating_since(now) + self.cfg.interval <= allowance
    }

    fn charge(&mut self) {
        self.send_at = self.send_at.max(self.now.mono) + self.cfg.interval;
    }

    fn release(&mut self) {
        let Some(conn) = self.conn else { return };
        if self.reg != Reg::Done {
            return;
        }
        while !self.pending.is_empty() && self.bucket_allows() {
            self.charge();
            if let Some(l) = self.pending.pop_front() {
                self.out.transmit(conn, l);
            }
        }
    }

    fn send_now(&mut self, cmd: &str, params: &[&[u8]]) {
        let Some(conn) = self.conn else { return };
        let mut e = Encoder::new(&mut self.out.buf);
        e.command(cmd);
        let n = params.len();
        for (i, p) in params.iter().enumerate() {
            if i + 1 == n {
                e.param_last(p);
            } else {
                e.param(p);
            }
        }
        if e.finish().is_ok() {
            self.out.transmit_buf(conn);
        }
    }

    fn opened(&mut self, conn: ConnId) {
        self.conn = Some(conn);
        self.last_rx = self.now.mono;
        self.out.event(ClientEvent::Connected);
        self.reg = Reg::CapLs;
        self.send_now("CAP", &[b"LS", b"302"]);
        if let Some(p) = self.cfg.password.clone() {
            self.send_now("PASS", &[p.as_bytes()]);
        }
        let nick = self.nick.clone();
        self.send_now("NICK", &[nick.as_bytes()]);
        let (user, real) = (self.cfg.user.clone(), self.cfg.realname.clone());
        let mut e = Encoder::new(&mut self.out.buf);
        e.command("USER")
            .param(user.as_bytes())
            .param(b"0")
            .param(b"*")
            .trailing(real.as_bytes());
        if e.finish().is_ok() {
            self.out.transmit_buf(conn);
        }
    }

    fn data(&mut self, bytes: &[u8]) {
        let mut pos = 0;
        loop {
            match self.reader.next_line(bytes, &mut pos) {
                Ok(Some(line)) => {
                    self.last_rx = self.now.mono;
                    self.ping_sent = false;
                    let line = line.into_bytes();
                    // Servers are read leniently: some exceed 512 bytes.
                    if let Ok(m) = Message::parse_with(line, Limits::lenient()) {
                        self.handle(m);
                    }
                }
                Ok(None) => return,
                Err(_) => continue,
            }
            if self.closing {
                return;
            }
        }
    }

    fn is_me(&self, nick: &[u8]) -> bool {
        self.casemap().eq(nick, self.nick.as_bytes())
    }

    fn handle(&mut self, m: Message) {
        let cm = self.casemap();
        match (m.numeric(), m.command().to_ascii_uppercase().as_str()) {
            (None, "PING") => {
                let params: Vec<&[u8]> = m.params().collect();
                self.send_now("PONG", &params);
            }
            (None, "CAP") => self.cap(&m),
            (None, "AUTHENTICATE") if m.param(0) == Some(b"+") => self.authenticate(),
            (Some(903), _) => {
                self.out.event(ClientEvent::Sasl { success: true });
                self.cap_end();
            }
            (Some(902 | 904 | 905 | 906 | 908), _) if self.reg == Reg::Sasl => {
                self.out.event(ClientEvent::Sasl { success: false });
                self.cap_end();
            }
            (Some(1), _) => {
                if let Some(n) = m.param_str(0) {
                    self.nick = n.into();
                }
                // The welcome text usually ends with our full source.
                if let Some(last) = m.last().and_then(|t| t.rsplit(|b| *b == b' ').next()) {
                    if last.contains(&b'!') && last.contains(&b'@') {
                        self.source_len = Some(last.len() + 2);
                    }
                }
                self.reg = Reg::Done;
                self.out.event(ClientEvent::Registered {
                    nick: self.nick.clone(),
                });
                self.release();
            }
            (Some(5), _) => self.isupport.add(&m),
            (Some(432 | 433 | 436 | 437), _) if self.reg != Reg::Done => self.next_nick(),
            (Some(353), _) => {
                // :server 353 me = #chan :@a +b c
                if let (Some(chan), Some(names)) = (m.param(2), m.param(3)) {
                    let prefixes: Vec<char> =
                        self.isupport.prefix().iter().map(|(_, s)| *s).collect();
                    let key = cm.fold(chan);
                    if let Some(ch) = self.channels.get_mut(&key) {
                        if self.names_open.insert(key) {
                            ch.members.clear();
                        }
                        for n in names.split(|b| *b == b' ').filter(|n| !n.is_empty()) {
                            let n = String::from_utf8_lossy(n);
                            let bare = n.trim_start_matches(|c| prefixes.contains(&c));
                            let pre = &n[..n.len() - bare.len()];
                            ch.members.insert(
                                cm.fold(bare.as_bytes()),
                                (bare.to_string(), pre.to_string()),
                            );
                        }
                    }
                }
            }
            (Some(366), _) => {
                if let Some(chan) = m.param(1) {
                    self.names_open.remove(&cm.fold(chan));
                }
            }
            (Some(332), _) => {
                if let (Some(chan), Some(t)) = (m.param(1), m.param(2)) {
                    if let Some(ch) = self.channels.get_mut(&cm.fold(chan)) {
                        ch.topic = Some(String::from_utf8_lossy(t).into_owned());
                    }
                }
            }
            (None, "JOIN") => {
                if let (Some(who), Some(chan)) = (m.source_nick(), m.param(0)) {
                    let key = cm.fold(chan);
                    if self.is_me(who) {
                        self.channels.insert(
                            key.clone(),
                            ChannelState {
                                name: String::from_utf8_lossy(chan).into_owned(),
                                ..ChannelState::default()
                            },
                        );
                    }
                    if let Some(ch) = self.channels.get_mut(&key) {
                        let w = String::from_utf8_lossy(who).into_owned();
                        ch.members.insert(cm.fold(who), (w, String::new()));
                    }
                }
            }
            (None, "PART") => {
                if let (Some(who), Some(chan)) = (m.source_nick(), m.param(0)) {
                    self.gone_from(&cm.fold(chan), who);
                }
            }
            (None, "KICK") => {
                if let (Some(chan), Some(who)) = (m.param(0), m.param(1)) {
                    self.gone_from(&cm.fold(chan), who);
                }
            }
            (None, "QUIT") => {
                if let Some(who) = m.source_nick() {
                    let k = cm.fold(who);
                    for ch in self.channels.values_mut() {
                        ch.members.remove(&k);
                    }
                }
            }
            (None, "NICK") => {
                if let (Some(old), Some(new)) = (m.source_nick(), m.param(0)) {
                    if self.is_me(old) {
                        self.nick = String::from_utf8_lossy(new).into_owned();
                    }
                    let (ok, nk) = (cm.fold(old), cm.fold(new));
                    let nn = String::from_utf8_lossy(new).into_owned();
                    for ch in self.channels.values_mut() {
                        if let Some((_, pre)) = ch.members.remove(&ok) {
                            ch.members.insert(nk.clone(), (nn.clone(), pre));
                        }
                    }
                }
            }
            (None, "TOPIC") => {
                if let (Some(chan), Some(t)) = (m.param(0), m.param(1)) {
                    if let Some(ch) = self.channels.get_mut(&cm.fold(chan)) {
                        ch.topic = Some(String::from_utf8_lossy(t).into_owned());
                    }
                }
            }
            (None, "MODE") => self.track_modes(&m),
            (None, "PRIVMSG") => self.ctcp_reply(&m),
            (None, "ERROR") => {
                if let Some(conn) = self.conn {
                    self.closing = true;
                    self.out.close(conn, Close::Graceful);
                }
            }
            _ => {}
        }
        self.out.event(ClientEvent::Message(m));
    }

    /// Answers CTCP VERSION, PING and CLIENTINFO sent to us in a PRIVMSG
    /// with a NOTICE (never to a channel message, never to a NOTICE, as
    /// the CTCP spec asks). Replies go through the rate limit and are
    /// dropped while other lines wait for it, so a CTCP flood cannot make
    /// us flood.
    fn ctcp_reply(&mut self, m: &Message) {
        let (Some(target), Some(text), Some(from)) = (m.param(0), m.param(1), m.source_nick())
        else {
            return;
        };
        if !self.is_me(target) || self.reg != Reg::Done || !self.pending.is_empty() {
            return;
        }
        let Some(c) = ctcp::parse(text) else { return };
        let mut body = Vec::new();
        if c.is("VERSION") {
            let Some(v) = self.cfg.ctcp_version.clone() else {
                return;
            };
            ctcp::encode(b"VERSION", v.as_bytes(), &mut body);
        } else if c.is("PING") {
            ctcp::encode(b"PING", c.params, &mut body);
        } else if c.is("CLIENTINFO") {
            let what: &[u8] = if self.cfg.ctcp_version.is_some() {
                b"ACTION CLIENTINFO PING VERSION"
            } else {
                b"ACTION CLIENTINFO PING"
            };
            ctcp::encode(b"CLIENTINFO", what, &mut body);
        } else {
            return;
        }
        let from = from.to_vec();
        // A reply that cannot be encoded (NUL in the peer's PING token) is
        // dropped: the peer sent garbage.
        let _ = self.command("NOTICE", &[&from, &body], true);
    }

    fn gone_from(&mut self, chan: &[u8], who: &[u8]) {
        let cm = self.casemap();
        if self.is_me(who) {
            self.channels.remove(chan);
        } else if let Some(ch) = self.channels.get_mut(chan) {
            ch.members.remove(&cm.fold(who));
        }
    }

    fn track_modes(&mut self, m: &Message) {
        let cm = self.casemap();
        let prefix = self.isupport.prefix();
        let (Some(chan), Some(modes)) = (m.param(0), m.param(1)) else {
            return;
        };
        let Some(ch) = self.channels.get_mut(&cm.fold(chan)) else {
            return;
        };
        let chanmodes = self.isupport.chanmodes();
        let mut args = m.params().skip(2);
        let mut on = true;
        for &c in modes {
            let c = char::from(c);
            match c {
                '+' => on = true,
                '-' => on = false,
                _ => {
                    if let Some((_, sym)) = prefix.iter().find(|(mc, _)| *mc == c) {
                        let Some(nick) = args.next() else { return };
                        if let Some((_, pre)) = ch.members.get_mut(&cm.fold(nick)) {
                            if on && !pre.contains(*sym) {
                                pre.push(*sym);
                                // Keep the symbols in rank order.
                                let ranked: String = prefix
                                    .iter()
                                    .map(|(_, s)| *s)
                                    .filter(|s| pre.contains(*s))
                                    .collect();
                                *pre = ranked;
                            } else if !on {
                                pre.retain(|s| s != *sym);
                            }
                        }
                    } else if chanmodes[0].contains(c)
                        || chanmodes[1].contains(c)
                        || (on && chanmodes[2].contains(c))
                    {
                        args.next();
                    }
                }
            }
        }
    }

    fn next_nick(&mut self) {
        self.nick_tries += 1;
        if self.nick_tries > self.cfg.max_nick_tries {
            if let Some(conn) = self.conn {
                self.send_now("QUIT", &[b"no usable nick"]);
                self.closing = true;
                self.out.close(conn, Close::Graceful);
            }
            return;
        }
        let max = self.isupport.nicklen().unwrap_or(9).max(2);
        let base: String = self.cfg.nick.chars().take(max).collect();
        let nick = if self.nick_tries <= 2 && base.len() + self.nick_tries <= max {
            let mut n = base.clone();
            for _ in 0..self.nick_tries {
                n.push('_');
            }
            n
        } else {
            let suffix = alloc::format!("{}", self.nick_tries);
            let keep = max.saturating_sub(suffix.len()).max(1);
            let mut n: String = base.chars().take(keep).collect();
            n.push_str(&suffix);
            n
        };
        self.nick = nick.clone();
        self.send_now("NICK", &[nick.as_bytes()]);
        self.out.event(ClientEvent::NickFallback { nick });
    }

    fn cap(&mut self, m: &Message) {
        let sub = m.param(1).unwrap_or_default().to_ascii_uppercase();
        match &sub[..] {
            b"LS" => {
                // `CAP * LS * :caps…` continues; the last has no `*`.
                let more = m.len() >= 4 && m.param(2) == Some(b"*");
                if let Some(list) = m.last() {
                    self.offer(list);
                }
                if more || self.reg != Reg::CapLs {
                    return;
                }
                let mut want: Vec<String> = self
                    .cfg
                    .caps
                    .iter()
                    .filter(|c| self.offered.contains(c))
                    .cloned()
                    .collect();
                // `sasl=EXTERNAL,…` without PLAIN: ours cannot work.
                let plain = self.sasl_mechs.is_empty()
                    || self
                        .sasl_mechs
                        .iter()
                        .any(|m| m.eq_ignore_ascii_case("PLAIN"));
                if self.cfg.sasl.is_some() && plain && self.offered.iter().any(|c| c == "sasl") {
                    want.push("sasl".into());
                }
                if want.is_empty() {
                    self.cap_end();
                } else {
                    self.reg = Reg::CapReq;
                    let list = want.join(" ");
                    self.send_now("CAP", &[b"REQ", list.as_bytes()]);
                }
            }
            b"ACK" => {
                let list = m.last().unwrap_or_default();
                let caps: Vec<String> = list
                    .split(|b| *b == b' ')
                    .filter(|c| !c.is_empty())
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect();
                self.acked.extend(caps.iter().cloned());
                self.out
                    .event(ClientEvent::CapsAcked { caps: caps.clone() });
                if self.reg == Reg::CapReq {
                    if caps.iter().any(|c| c == "sasl") && self.cfg.sasl.is_some() {
                        self.reg = Reg::Sasl;
                        self.send_now("AUTHENTICATE", &[b"PLAIN"]);
                    } else {
                        self.cap_end();
                    }
                }
            }
            b"NAK" if self.reg == Reg::CapReq => self.cap_end(),
            // cap-notify (implied by `CAP LS 302`): a capability came or
            // went while we are connected.
            b"NEW" => {
                let Some(list) = m.last() else { return };
                let before = self.offered.len();
                self.offer(list);
                let want: Vec<String> = self.offered[before..]
                    .iter()
                    .filter(|c| self.cfg.caps.contains(c) && !self.acked.contains(c))
                    .cloned()
                    .collect();
                if !want.is_empty() {
                    let list = want.join(" ");
                    self.send_now("CAP", &[b"REQ", list.as_bytes()]);
                }
            }
            b"DEL" => {
                let Some(list) = m.last() else { return };
                for c in list.split(|b| *b == b' ').filter(|c| !c.is_empty()) {
                    self.acked.retain(|a| a.as_bytes() != c);
                    self.offered.retain(|a| a.as_bytes() != c);
                }
            }
            _ => {}
        }
    }

    /// Records the capabilities of a `CAP LS`/`NEW` list (`name[=value]`).
    fn offer(&mut self, list: &[u8]) {
        for c in list.split(|b| *b == b' ').filter(|c| !c.is_empty()) {
            let mut kv = c.splitn(2, |b| *b == b'=');
            let name = String::from_utf8_lossy(kv.next().unwrap_or_default()).into_owned();
            if name == "sasl" {
                if let Some(v) = kv.next() {
                    self.sasl_mechs = v
                        .split(|b| *b == b',')
                        .map(|m| String::from_utf8_lossy(m).into_owned())
                        .collect();
                }
            }
            if !self.offered.contains(&name) && self.offered.len() < 256 {
                self.offered.push(name);
            }
        }
    }

    fn authenticate(&mut self) {
        let Some((account, password)) = self.cfg.sasl.clone() else {
            self.send_now("AUTHENTICATE", &[b"*"]);
            return;
        };
        // PLAIN (RFC 4616): authzid NUL authcid NUL password, base64, in
        // 400-byte pieces; a final `+` when the last piece was full.
        let mut raw = Vec::new();
        raw.extend_from_slice(account.as_bytes());
        raw.push(0);
        raw.extend_from_slice(account.as_bytes());
        raw.push(0);
        raw.extend_from_slice(password.as_bytes());
        let b64 = base64(&raw);
        for piece in b64.chunks(400) {
            self.send_now("AUTHENTICATE", &[piece]);
        }
        if b64.len() % 400 == 0 {
            self.send_now("AUTHENTICATE", &[b"+"]);
        }
    }

    fn cap_end(&mut self) {
        if matches!(self.reg, Reg::CapLs | Reg::CapReq | Reg::Sasl) {
            self.reg = Reg::Welcome;
            self.send_now("CAP", &[b"END"]);
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let mut d = None;
        if self.conn.is_some() && !self.closing {
            let ping = self.last_rx + self.cfg.ping_interval;
            d = Some(if self.ping_sent {
                ping + self.cfg.ping_timeout
            } else {
                ping
            });
            if !self.pending.is_empty() && self.reg == Reg::Done {
                let allowance = self.cfg.interval * self.cfg.burst.max(1);
                let due = Instant::from_nanos(self.send_at.as_nanos().saturating_sub(
                    u64::try_from((allowance - self.cfg.interval).as_nanos()).unwrap_or(u64::MAX),
                ));
                d = twill_core::machine::earliest(d, Some(due));
            }
        }
        d
    }
}

/// Where to cut `s` so the first part is at most `room` bytes: at the
/// last space in the second half of the window if there is one, else at
/// a UTF-8 character boundary.
fn split_point(s: &[u8], room: usize) -> usize {
    if s.len() <= room {
        return s.len();
    }
    let mut cut = room;
    while cut > 0 && (s[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    if let Some(sp) = s[room / 2..cut].iter().rposition(|b| *b == b' ') {
        return room / 2 + sp + 1;
    }
    cut.max(1)
}

fn base64(data: &[u8]) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [
            c[0],
            c.get(1).copied().unwrap_or(0),
            c.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63]);
        out.push(T[(n >> 12) as usize & 63]);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63]
        } else {
            b'='
        });
    }
    out
}

impl Machine for Client {
    type Event = ClientEvent;
    type Error = Error;

    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Error> {
        self.now = now;
        match input {
            // Lines queued before the connection was up wait in `pending`
            // for registration.
            Input::Opened { conn, .. } | Input::Accepted { conn, .. } if self.conn.is_none() => {
                self.opened(conn)
            }
            Input::Data { conn, bytes } => {
                if Some(conn) == self.conn && !self.closing {
                    self.data(bytes);
                }
                return Ok(bytes.len());
            }
            Input::Eof { conn, .. } if Some(conn) == self.conn && !self.closing => {
                self.closing = true;
                self.out.close(conn, Close::Graceful);
            }
            Input::Closed { conn } if Some(conn) == self.conn => {
                self.conn = None;
                self.closing = true;
                self.pending.clear();
                self.out.event(ClientEvent::Disconnected);
            }
            Input::OpenFailed { error, .. } => self.out.event(ClientEvent::ConnectFailed { error }),
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, now: Now) {
        self.now = now;
        let Some(conn) = self.conn else { return };
        if self.closing {
            return;
        }
        self.release();
        let silent = now.mono.saturating_since(self.last_rx);
        if self.ping_sent && silent >= self.cfg.ping_interval + self.cfg.ping_timeout {
            self.closing = true;
            self.out.event(ClientEvent::PingTimeout);
            self.out.close(conn, Close::Abort);
        } else if !self.ping_sent && silent >= self.cfg.ping_interval {
            self.ping_sent = true;
            self.send_now("PING", &[b"twill"]);
        }
    }

    fn poll_output(&mut self) -> Output<ClientEvent> {
        let d = self.deadline();
        self.out.pop_or_wait(d)
    }
}

impl Default for Client {
    fn default() -> Self {
        Client::new(ClientConfig::new("twill"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_plain() {
        assert_eq!(
            base64(b"jilles\0jilles\0sesame"),
            b"amlsbGVzAGppbGxlcwBzZXNhbWU="
        );
        assert_eq!(base64(b""), b"");
        assert_eq!(base64(b"a"), b"YQ==");
    }

    #[test]
    fn split_points() {
        assert_eq!(split_point(b"abc", 10), 3);
        let s = "ééééé".as_bytes();
        let c = split_point(s, 5);
        assert!(core::str::from_utf8(&s[..c]).is_ok());
        assert_eq!(split_point(b"hello world again", 12), 12);
    }
}
