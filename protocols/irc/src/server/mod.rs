//! [`Server`]: an IRC server as one hub machine over every client
//! connection (DESIGN.md, "Two ways to serve"). Every client, channel and
//! timer lives in this one value, so the whole network runs the same under
//! any driver, under a virtual clock in tests and in a fuzzer.
//!
//! | input | effect |
//! |---|---|
//! | `Accepted` / `Opened` | a new client; [`ServerEvent::Connected`]; the registration timer starts |
//! | `Data` | lines are parsed and answered; a short take when the client is over its flood allowance (reading resumes with `Resume` once it has earned a line) |
//! | a line over 8191 + 512 bytes | `417 ERR_INPUTTOOLONG`, the line is dropped, the client stays |
//! | `Sent` | the client's send queue shrinks |
//! | `Eof` / `Closed` | QUIT fan-out to the channels it shared; [`ServerEvent::Disconnected`] |
//! | a timer | registration timeout, `PING` after idleness, ping timeout, flood resume |
//!
//! **Slow readers never block the others.** A client's unflushed output is
//! counted (`Transmit` adds, `Sent` subtracts); a message that would take
//! it past [`ServerConfig::max_queued`] is not queued: the client is
//! dropped with `Close::Abort` ("Max SendQ exceeded") and the others see
//! it quit. A relayed message is encoded once per capability set and
//! shared (`Bytes`) by every recipient.
//!
//! **Flood protection** is a token bucket per client on `now`: a burst of
//! [`ServerConfig::flood_burst`] lines, then one line per
//! [`ServerConfig::flood_interval`]. A client over it is not read from
//! (short take; TCP pushes back on it) until it has earned a line again.
//! `PING` and `PONG` are not charged, and every line read (even one held
//! back) counts as a sign of life, so a busy client is never timed out.
//!
//! Commands: CAP (LS 302/LIST/REQ/END with `message-tags`, `server-time`,
//! `echo-message`), PASS, NICK, USER, PING, PONG, QUIT, JOIN, PART,
//! PRIVMSG, NOTICE, TOPIC, NAMES, LIST, WHO, WHOIS, MODE (channel
//! `+o +v +t +n +m +i +k +l +b`, user `+i`), KICK, INVITE, AWAY, MOTD,
//! LUSERS.

mod channel;
mod handlers;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;
use twill_core::{
    Addr, Close, ConnId, Duration, Input, Instant, Machine, Now, OutQueue, Output, UnixTime,
};

use crate::codec::message::Limits;
use crate::codec::{CaseMapping, Encoder, LineReader, MAX_LINE};
use crate::error::Error;
use channel::Channel;

/// How the server behaves; [`ServerConfig::default`] is sensible.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The server's name (the source of its replies).
    pub name: String,
    /// The network name (ISUPPORT `NETWORK`).
    pub network: String,
    /// Lines of the message of the day; none gives `422 ERR_NOMOTD`.
    pub motd: Vec<String>,
    /// A connection that has not registered in this time is closed.
    pub registration_timeout: Duration,
    /// A client silent this long is sent a `PING`.
    pub ping_interval: Duration,
    /// … and closed if still silent this much later.
    pub ping_timeout: Duration,
    /// Most unflushed output per client before it is dropped.
    pub max_queued: usize,
    /// Lines a client may send at once before throttling starts.
    pub flood_burst: u32,
    /// After the burst, one line per this interval.
    pub flood_interval: Duration,
    /// Most channels one client may be in.
    pub max_channels: usize,
    /// Longest nick.
    pub nicklen: usize,
    /// Longest channel name.
    pub channellen: usize,
    /// Longest topic.
    pub topiclen: usize,
    /// Longest kick reason.
    pub kicklen: usize,
    /// Longest away message.
    pub awaylen: usize,
    /// Most targets of one PRIVMSG/NOTICE/JOIN/KICK.
    pub max_targets: usize,
    /// Most bans per channel.
    pub max_bans: usize,
    /// How nicks and channel names compare.
    pub casemapping: CaseMapping,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            name: "twill.irc".into(),
            network: "twill".into(),
            motd: Vec::new(),
            registration_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(120),
            ping_timeout: Duration::from_secs(60),
            max_queued: 512 * 1024,
            flood_burst: 20,
            flood_interval: Duration::from_millis(200),
            max_channels: 50,
            nicklen: 30,
            channellen: 50,
            topiclen: 390,
            kicklen: 255,
            awaylen: 255,
            max_targets: 4,
            max_bans: 100,
            casemapping: CaseMapping::Rfc1459,
        }
    }
}

/// What the server tells the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A client connected.
    Connected {
        /// The connection.
        conn: ConnId,
        /// Its address.
        peer: Addr,
    },
    /// A client completed registration.
    Registered {
        /// The connection.
        conn: ConnId,
        /// Its nick.
        nick: String,
    },
    /// A client sent a line over the limit (answered with 417).
    LineTooLong {
        /// The connection.
        conn: ConnId,
    },
    /// A client went over its flood allowance and is being throttled
    /// (reported once per client).
    Throttled {
        /// The connection.
        conn: ConnId,
    },
    /// A client did not read: its send queue passed the limit and it was
    /// dropped.
    Overflow {
        /// The connection.
        conn: ConnId,
        /// Its unflushed output at the time.
        queued: usize,
    },
    /// A client is gone (or going): quit, timeout, overflow, EOF.
    Disconnected {
        /// The connection.
        conn: ConnId,
        /// Why, as told to the others.
        reason: String,
    },
}

/// Capabilities a client enabled with `CAP REQ`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Caps(u8);

impl Caps {
    pub const MESSAGE_TAGS: u8 = 1;
    pub const SERVER_TIME: u8 = 2;
    pub const ECHO: u8 = 4;
    /// What the server offers, in `CAP LS` order.
    pub const ALL: [(&'static str, u8); 3] = [
        ("echo-message", Caps::ECHO),
        ("message-tags", Caps::MESSAGE_TAGS),
        ("server-time", Caps::SERVER_TIME),
    ];

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    pub fn by_name(name: &[u8]) -> Option<u8> {
        Caps::ALL
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|(_, b)| *b)
    }
}

#[derive(Debug)]
pub(crate) struct Client {
    pub peer: Addr,
    pub host: Bytes,
    pub reader: LineReader,
    /// Display nick; empty until NICK.
    pub nick: Bytes,
    pub user: Bytes,
    pub realname: Bytes,
    /// `nick!user@host`, kept current.
    pub source: Bytes,
    pub registered: bool,
    pub cap_negotiating: bool,
    pub caps: Caps,
    pub channels: BTreeSet<Vec<u8>>,
    pub away: Option<Bytes>,
    pub invisible: bool,
    /// Unflushed output.
    pub queued: usize,
    /// A `Close` was emitted: no more input or output.
    pub closing: bool,
    /// QUIT was fanned out (membership and nick released).
    pub gone: bool,
    /// Flood bucket: the theoretical time the next line is due (GCRA).
    pub flood_at: Instant,
    pub paused: bool,
    /// The line that found the bucket empty, run first when it refills
    /// (reading stays paused while it waits).
    pub held: Option<Bytes>,
    /// A short take left bytes with the driver while paused: they are
    /// asked for again with `Resume` (only then: a driver that kept
    /// nothing must not be told to re-offer).
    pub starved: bool,
    pub throttled_once: bool,
    pub connected_at: Instant,
    pub signon: i64,
    pub last_active: Instant,
    pub last_spoke: Instant,
    pub ping_sent: bool,
    pub timer: Option<Instant>,
}

/// The IRC server hub. See the [module docs](self).
#[derive(Debug)]
pub struct Server {
    pub(crate) cfg: ServerConfig,
    pub(crate) clients: BTreeMap<ConnId, Client>,
    /// Folded nick → connection.
    pub(crate) nicks: BTreeMap<Vec<u8>, ConnId>,
    /// Folded name → channel.
    pub(crate) channels: BTreeMap<Vec<u8>, Channel>,
    pub(crate) out: OutQueue<ServerEvent>,
    timers: BTreeSet<(Instant, ConnId)>,
    /// Clients whose send queue overflowed, to be quit after the current
    /// step (never in the middle of a fan-out).
    doomed: Vec<ConnId>,
    pub(crate) now: Now,
    started: UnixTime,
}

impl Default for Server {
    fn default() -> Self {
        Server::new(ServerConfig::default())
    }
}

impl Server {
    /// A server with `cfg`.
    pub fn new(cfg: ServerConfig) -> Self {
        Server {
            cfg,
            clients: BTreeMap::new(),
            nicks: BTreeMap::new(),
            channels: BTreeMap::new(),
            out: OutQueue::new(),
            timers: BTreeSet::new(),
            doomed: Vec::new(),
            now: Now::default(),
            started: UnixTime::EPOCH,
        }
    }

    // --- getters ---

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    /// Connected clients (registered or not, not closing).
    pub fn client_count(&self) -> usize {
        self.clients.values().filter(|c| !c.closing).count()
    }

    /// The nick of a registered client.
    pub fn nick(&self, conn: ConnId) -> Option<&str> {
        self.clients
            .get(&conn)
            .filter(|c| c.registered && !c.gone)
            .and_then(|c| core::str::from_utf8(&c.nick).ok())
    }

    /// The connection of a nick.
    pub fn find_nick(&self, nick: &str) -> Option<ConnId> {
        self.nicks
            .get(&self.cfg.casemapping.fold(nick.as_bytes()))
            .copied()
    }

    /// The channels, by display name.
    pub fn channel_names(&self) -> Vec<String> {
        self.channels
            .values()
            .map(|c| String::from_utf8_lossy(&c.name).into_owned())
            .collect()
    }

    /// The members of a channel (nicks, `@`/`+` prefixed), if it exists.
    pub fn members(&self, channel: &str) -> Option<Vec<String>> {
        let ch = self
            .channels
            .get(&self.cfg.casemapping.fold(channel.as_bytes()))?;
        Some(
            ch.members
                .iter()
                .filter_map(|(id, m)| {
                    let c = self.clients.get(id)?;
                    let mut s = String::from_utf8_lossy(m.prefix()).into_owned();
                    s.push_str(&String::from_utf8_lossy(&c.nick));
                    Some(s)
                })
                .collect(),
        )
    }

    /// A client's address.
    pub fn peer_addr(&self, conn: ConnId) -> Option<&Addr> {
        self.clients.get(&conn).map(|c| &c.peer)
    }

    /// A client's unflushed output.
    pub fn pending_output(&self, conn: ConnId) -> Option<usize> {
        self.clients.get(&conn).map(|c| c.queued)
    }

    // --- commands ---

    /// Sends a NOTICE from the server to every registered client.
    ///
    /// # Errors
    /// [`Error::Encode`] if `text` holds CR, LF or NUL.
    pub fn notice_all(&mut self, text: &str) -> Result<(), Error> {
        let targets: Vec<ConnId> = self
            .clients
            .iter()
            .filter(|(_, c)| c.registered && !c.closing)
            .map(|(id, _)| *id)
            .collect();
        let mut e = Encoder::new(&mut self.out.buf);
        e.source(self.cfg.name.as_bytes())
            .command("NOTICE")
            .param(b"*")
            .trailing(text.as_bytes());
        e.finish()?;
        let msg = self.out.buf.split().freeze();
        for t in targets {
            self.deliver(t, msg.clone());
        }
        self.reap();
        Ok(())
    }

    /// Disconnects a client with an `ERROR` line and a QUIT to the others.
    ///
    /// # Errors
    /// [`Error::UnknownConn`].
    pub fn disconnect(&mut self, conn: ConnId, reason: &str) -> Result<(), Error> {
        if !self.clients.contains_key(&conn) {
            return Err(Error::UnknownConn(conn));
        }
        self.kill(conn, reason.as_bytes(), Close::Graceful);
        self.reap();
        Ok(())
    }

    // --- plumbing ---

    fn accept(&mut self, conn: ConnId, peer: Addr) {
        let now = self.now.mono;
        let host: Bytes = match &peer {
            Addr::Ip(a) => Bytes::from(alloc::format!("{}", a.ip()).into_bytes()),
            _ => Bytes::from_static(b"localhost"),
        };
        let c = Client {
            peer: peer.clone(),
            host,
            reader: LineReader::new(MAX_LINE),
            nick: Bytes::new(),
            user: Bytes::new(),
            realname: Bytes::new(),
            source: Bytes::new(),
            registered: false,
            cap_negotiating: false,
            caps: Caps::default(),
            channels: BTreeSet::new(),
            away: None,
            invisible: false,
            queued: 0,
            closing: false,
            gone: false,
            flood_at: now,
            paused: false,
            held: None,
            starved: false,
            throttled_once: false,
            connected_at: now,
            signon: self.now.wall.secs(),
            last_active: now,
            last_spoke: now,
            ping_sent: false,
            timer: None,
        };
        self.clients.insert(conn, c);
        self.out.event(ServerEvent::Connected { conn, peer });
        self.arm(conn, now + self.cfg.registration_timeout);
    }

    /// Sets `conn`'s timer to `t` unless an earlier one is armed (which
    /// re-evaluates the client when it fires).
    fn arm(&mut self, conn: ConnId, t: Instant) {
        let Some(c) = self.clients.get_mut(&conn) else {
            return;
        };
        if let Some(old) = c.timer {
            if old <= t {
                return;
            }
            self.timers.remove(&(old, conn));
        }
        c.timer = Some(t);
        self.timers.insert((t, conn));
    }

    /// Queues `msg` for `conn`, or dooms the client if its send queue
    /// would overflow.
    pub(crate) fn deliver(&mut self, conn: ConnId, msg: Bytes) {
        let Some(c) = self.clients.get_mut(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        if c.queued.saturating_add(msg.len()) > self.cfg.max_queued {
            let queued = c.queued;
            c.closing = true;
            self.out.event(ServerEvent::Overflow { conn, queued });
            self.out.close(conn, Close::Abort);
            self.doomed.push(conn);
            return;
        }
        c.queued += msg.len();
        self.out.transmit(conn, msg);
    }

    /// Sends what was encoded into `out.buf` to `conn`.
    pub(crate) fn flush_to(&mut self, conn: ConnId) {
        if !self.out.buf.is_empty() {
            let msg = self.out.buf.split().freeze();
            self.deliver(conn, msg);
        }
    }

    /// Quits everyone whose queue overflowed (their quits may doom more).
    pub(crate) fn reap(&mut self) {
        while let Some(conn) = self.doomed.pop() {
            self.quit_fanout(conn, b"Max SendQ exceeded");
        }
    }

    /// Sends `ERROR :Closing Link…`, fans out the QUIT and closes.
    pub(crate) fn kill(&mut self, conn: ConnId, reason: &[u8], how: Close) {
        let Some(c) = self.clients.get(&conn) else {
            return;
        };
        if !c.closing {
            let mut text = Vec::from(&b"Closing Link: "[..]);
            text.extend_from_slice(&c.host);
            text.extend_from_slice(b" (");
            text.extend_from_slice(reason);
            text.extend_from_slice(b")");
            let mut e = Encoder::new(&mut self.out.buf);
            e.command("ERROR").trailing(&text);
            let _ = e.finish_truncating();
            self.flush_to(conn);
        }
        self.quit_fanout(conn, reason);
        if let Some(c) = self.clients.get_mut(&conn) {
            if !c.closing {
                c.closing = true;
                self.out.close(conn, how);
            }
        }
    }

    /// Tells everyone sharing a channel that `conn` quit, and releases its
    /// nick and memberships. Idempotent.
    pub(crate) fn quit_fanout(&mut self, conn: ConnId, reason: &[u8]) {
        let Some(c) = self.clients.get_mut(&conn) else {
            return;
        };
        if c.gone {
            return;
        }
        c.gone = true;
        let chans = core::mem::take(&mut c.channels);
        let source = c.source.clone();
        let registered = c.registered;
        let nick_key = self.cfg.casemapping.fold(&c.nick);
        if self.nicks.get(&nick_key) == Some(&conn) {
            self.nicks.remove(&nick_key);
        }
        self.out.event(ServerEvent::Disconnected {
            conn,
            reason: String::from_utf8_lossy(reason).into_owned(),
        });
        if !registered {
            return;
        }
        let mut peers = BTreeSet::new();
        for key in &chans {
            if let Some(ch) = self.channels.get_mut(key) {
                ch.members.remove(&conn);
                ch.invited.remove(&conn);
                peers.extend(ch.members.keys().copied());
                if ch.members.is_empty() {
                    self.channels.remove(key);
                }
            }
        }
        if peers.is_empty() {
            return;
        }
        let mut e = Encoder::new(&mut self.out.buf);
        e.source(&source).command("QUIT").trailing(reason);
        if e.finish_truncating().is_err() {
            return;
        }
        let plain = self.out.buf.split().freeze();
        let mut timed = None;
        for p in peers {
            let msg = self.variant(p, &plain, &mut timed);
            self.deliver(p, msg);
        }
    }

    /// The form of a server-originated relay `plain` for `conn`: with a
    /// `time` tag for `server-time` clients (encoded once, in `timed`).
    pub(crate) fn variant(
        &mut self,
        conn: ConnId,
        plain: &Bytes,
        timed: &mut Option<Bytes>,
    ) -> Bytes {
        let wants = self
            .clients
            .get(&conn)
            .is_some_and(|c| c.caps.has(Caps::SERVER_TIME));
        if !wants {
            return plain.clone();
        }
        if let Some(t) = timed {
            return t.clone();
        }
        self.out.buf.extend_from_slice(b"@time=");
        self.time_tag();
        self.out.buf.extend_from_slice(b" ");
        self.out.buf.extend_from_slice(plain);
        let t = self.out.buf.split().freeze();
        *timed = Some(t.clone());
        t
    }

    /// Appends `now.wall` as `YYYY-MM-DDThh:mm:ss.sssZ`.
    pub(crate) fn time_tag(&mut self) {
        use core::fmt::Write;
        let w = self.now.wall;
        let c = w.to_civil();
        let mut s = String::with_capacity(24);
        let _ = write!(
            s,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            c.year,
            c.month,
            c.day,
            c.hour,
            c.minute,
            c.second,
            w.subsec_nanos() / 1_000_000
        );
        self.out.buf.extend_from_slice(s.as_bytes());
    }

    /// Whether a flood bucket due at `flood_at` lets a line in at `now`.
    fn flood_allows(cfg: &ServerConfig, flood_at: Instant, now: Instant) -> bool {
        let due = flood_at.max(now);
        let allowance = cfg.flood_interval * cfg.flood_burst.max(1);
        due.saturating_since(now) + cfg.flood_interval <= allowance
    }

    fn data(&mut self, conn: ConnId, bytes: &[u8]) -> usize {
        let mut pos = 0;
        loop {
            let Some(c) = self.clients.get_mut(&conn) else {
                return bytes.len();
            };
            if c.closing {
                return bytes.len();
            }
            if c.paused {
                if pos < bytes.len() {
                    c.starved = true;
                }
                return pos;
            }
            if pos >= bytes.len() {
                return pos;
            }
            match c.reader.next_line(bytes, &mut pos) {
                Ok(Some(line)) => {
                    if line.as_bytes().is_empty() {
                        continue;
                    }
                    let line = line.into_bytes();
                    self.take_line(conn, line);
                    self.reap();
                }
                Ok(None) => return bytes.len(),
                Err(_) => {
                    self.out.event(ServerEvent::LineTooLong { conn });
                    self.numeric(
                        conn,
                        crate::codec::numeric::ERR_INPUTTOOLONG,
                        &[],
                        b"Input line was too long",
                    );
                    self.reap();
                }
            }
        }
    }

    /// Runs one complete line through the flood bucket. `PING` and `PONG`
    /// are free: a client answering the server's `PING` (or measuring its
    /// lag) while it talks a lot must never be throttled for it, nor
    /// timed out because its `PONG` waited behind its own chatter. Any
    /// other line is charged; one that finds the bucket empty is held and
    /// reading pauses until it is due.
    fn take_line(&mut self, conn: ConnId, line: Bytes) {
        let now = self.now.mono;
        let Some(c) = self.clients.get_mut(&conn) else {
            return;
        };
        // Any line proves the client alive, even one held back.
        c.last_active = now;
        c.ping_sent = false;
        if !is_ping_or_pong(&line) {
            if !Self::flood_allows(&self.cfg, c.flood_at, now) {
                c.held = Some(line);
                c.paused = true;
                let first = !c.throttled_once;
                c.throttled_once = true;
                let resume = Self::flood_due(&self.cfg, c.flood_at).max(now);
                if first {
                    self.out.event(ServerEvent::Throttled { conn });
                }
                self.arm(conn, resume);
                return;
            }
            c.flood_at = c.flood_at.max(now) + self.cfg.flood_interval;
        }
        self.line(conn, line);
    }

    /// When a bucket due at `flood_at` has room for one more line: once
    /// `flood_at` is within the allowance minus one interval of now.
    fn flood_due(cfg: &ServerConfig, flood_at: Instant) -> Instant {
        let allowance = cfg.flood_interval * cfg.flood_burst.max(1);
        Instant::from_nanos(flood_at.as_nanos().saturating_sub(
            u64::try_from((allowance - cfg.flood_interval).as_nanos()).unwrap_or(u64::MAX),
        ))
    }

    fn line(&mut self, conn: ConnId, line: Bytes) {
        match crate::codec::Message::parse_with(line, Limits::default()) {
            Ok(msg) => self.dispatch(conn, &msg),
            Err(crate::error::ParseError::BodyTooLong | crate::error::ParseError::TagsTooLong) => {
                self.out.event(ServerEvent::LineTooLong { conn });
                self.numeric(
                    conn,
                    crate::codec::numeric::ERR_INPUTTOOLONG,
                    &[],
                    b"Input line was too long",
                );
            }
            // Garbage (no command, bad tags, NUL) is ignored, as servers do.
            Err(_) => {}
        }
    }

    /// Encodes a numeric reply `:server CODE nick params… :text` to `conn`.
    pub(crate) fn numeric(&mut self, conn: ConnId, code: u16, params: &[&[u8]], text: &[u8]) {
        let Some(c) = self.clients.get(&conn) else {
            return;
        };
        let nick: &[u8] = if c.nick.is_empty() { b"*" } else { &c.nick };
        let mut e = Encoder::new(&mut self.out.buf);
        e.source(self.cfg.name.as_bytes()).numeric(code).param(nick);
        for p in params {
            e.param(p);
        }
        e.trailing(text);
        if e.finish_truncating().is_ok() {
            self.flush_to(conn);
        }
    }

    fn tick(&mut self, conn: ConnId) {
        let now = self.now.mono;
        let cfg_interval = self.cfg.ping_interval;
        let cfg_timeout = self.cfg.ping_timeout;
        let Some(c) = self.clients.get_mut(&conn) else {
            return;
        };
        c.timer = None;
        if c.closing {
            return;
        }
        let mut next: Option<Instant> = None;
        if c.paused {
            if Self::flood_allows(&self.cfg, c.flood_at, now) {
                c.paused = false;
                if let Some(line) = c.held.take() {
                    c.flood_at = c.flood_at.max(now) + self.cfg.flood_interval;
                    self.line(conn, line);
                    self.reap();
                }
                let Some(c) = self.clients.get_mut(&conn) else {
                    return;
                };
                if c.closing {
                    return;
                }
                // The held line may have filled the bucket again: wait
                // for the next slot before reading on.
                if Self::flood_allows(&self.cfg, c.flood_at, now) {
                    if core::mem::take(&mut c.starved) {
                        self.out.push(Output::Resume { conn });
                    }
                } else {
                    c.paused = true;
                    next = Some(Self::flood_due(&self.cfg, c.flood_at).max(now));
                }
            } else {
                next = Some(Self::flood_due(&self.cfg, c.flood_at).max(now));
            }
        }
        let Some(c) = self.clients.get_mut(&conn) else {
            return;
        };
        if !c.registered {
            let deadline = c.connected_at + self.cfg.registration_timeout;
            if now >= deadline {
                self.kill(conn, b"Registration timeout", Close::Graceful);
                return;
            }
            next = twill_core::machine::earliest(next, Some(deadline));
        } else {
            let ping_at = c.last_active + cfg_interval;
            if c.ping_sent {
                let dead_at = ping_at + cfg_timeout;
                if now >= dead_at {
                    let secs = now.saturating_since(c.last_active).as_secs();
                    let reason = alloc::format!("Ping timeout: {secs} seconds");
                    self.kill(conn, reason.as_bytes(), Close::Graceful);
                    return;
                }
                next = twill_core::machine::earliest(next, Some(dead_at));
            } else if now >= ping_at {
                c.ping_sent = true;
                let mut e = Encoder::new(&mut self.out.buf);
                e.command("PING").trailing(self.cfg.name.as_bytes());
                let _ = e.finish();
                self.flush_to(conn);
                next = twill_core::machine::earliest(next, Some(now + cfg_timeout));
            } else {
                next = twill_core::machine::earliest(next, Some(ping_at));
            }
        }
        if let Some(t) = next {
            self.arm(conn, t);
        }
        self.reap();
    }
}

/// Whether a raw line's command is `PING` or `PONG` (after any tags and
/// source), which the flood bucket does not charge.
fn is_ping_or_pong(line: &[u8]) -> bool {
    let mut rest = line;
    for lead in [b'@', b':'] {
        if rest.first() == Some(&lead) {
            let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
            rest = rest.get(end..).unwrap_or_default();
            while rest.first() == Some(&b' ') {
                rest = rest.get(1..).unwrap_or_default();
            }
        }
    }
    let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
    let cmd = rest.get(..end).unwrap_or_default();
    cmd.eq_ignore_ascii_case(b"PING") || cmd.eq_ignore_ascii_case(b"PONG")
}

impl Machine for Server {
    type Event = ServerEvent;
    type Error = Error;

    /// Never fails: unknown connections' bytes are taken and dropped.
    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Error> {
        if self.started == UnixTime::EPOCH {
            self.started = now.wall;
        }
        self.now = now;
        match input {
            Input::Accepted { conn, peer, .. } | Input::Opened { conn, peer, .. } => {
                self.accept(conn, peer)
            }
            Input::Data { conn, bytes } => return Ok(self.data(conn, bytes)),
            Input::Eof { conn, .. } => {
                // A line held by the flood bucket was accepted: run it.
                if let Some(line) = self.clients.get_mut(&conn).and_then(|c| c.held.take()) {
                    self.line(conn, line);
                    self.reap();
                }
                self.kill(conn, b"Connection closed", Close::Graceful);
                self.reap();
            }
            Input::Sent { conn, bytes } => {
                if let Some(c) = self.clients.get_mut(&conn) {
                    c.queued = c.queued.saturating_sub(bytes);
                }
            }
            Input::Closed { conn } => {
                self.quit_fanout(conn, b"Connection closed");
                if let Some(c) = self.clients.remove(&conn) {
                    if let Some(t) = c.timer {
                        self.timers.remove(&(t, conn));
                    }
                }
                self.reap();
            }
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, now: Now) {
        self.now = now;
        while let Some(&(t, conn)) = self.timers.first() {
            if t > now.mono {
                break;
            }
            self.timers.remove(&(t, conn));
            self.tick(conn);
        }
    }

    fn poll_output(&mut self) -> Output<ServerEvent> {
        let deadline = self.timers.first().map(|(t, _)| *t);
        self.out.pop_or_wait(deadline)
    }
}
