//! The server's answers to each command. Every handler reads its
//! parameters defensively (a missing one is `461`), never panics, and
//! addresses output by `ConnId` through `deliver`, which enforces the send
//! queue bound.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use bytes::Bytes;
use twill_core::{Close, ConnId};

use super::channel::{mask_match, Channel, Member, Topic};
use super::{Caps, Server, ServerEvent};
use crate::codec::numeric::*;
use crate::codec::{Encoder, Message};

const VERSION: &str = concat!("twill-irc-", env!("CARGO_PKG_VERSION"));

/// A message relayed from a client, encoded lazily once per capability
/// combination (plain, `time`, client tags, both) and shared.
struct Relay<'a> {
    source: &'a [u8],
    command: &'a str,
    params: &'a [&'a [u8]],
    /// Client-only tags (`+key=value`, escaped) to pass to `message-tags`
    /// clients.
    client_tags: Vec<(&'a [u8], Option<&'a [u8]>)>,
    cache: [Option<Bytes>; 4],
}

impl<'a> Relay<'a> {
    fn new(source: &'a [u8], command: &'a str, params: &'a [&'a [u8]]) -> Self {
        Relay {
            source,
            command,
            params,
            client_tags: Vec::new(),
            cache: Default::default(),
        }
    }
}

fn is_text_command(cmd: &str) -> bool {
    matches!(
        cmd,
        "PRIVMSG" | "NOTICE" | "PART" | "QUIT" | "KICK" | "TOPIC" | "AWAY"
    )
}

impl Server {
    fn fold(&self, s: &[u8]) -> Vec<u8> {
        self.cfg.casemapping.fold(s)
    }

    /// Sends `relay` to `conn` in the form its capabilities ask for.
    fn relay_to(&mut self, conn: ConnId, r: &mut Relay<'_>) {
        let Some(c) = self.clients.get(&conn) else {
            return;
        };
        let time = c.caps.has(Caps::SERVER_TIME);
        let tags = c.caps.has(Caps::MESSAGE_TAGS) && !r.client_tags.is_empty();
        let v = usize::from(time) | (usize::from(tags) << 1);
        if let Some(b) = &r.cache[v] {
            let b = b.clone();
            self.deliver(conn, b);
            return;
        }
        let start = self.out.buf.len();
        if time {
            self.out.buf.extend_from_slice(b"@time=");
            self.time_tag();
        }
        if tags {
            for (i, (k, v)) in r.client_tags.iter().enumerate() {
                self.out
                    .buf
                    .extend_from_slice(if i == 0 && !time { b"@" } else { b";" });
                self.out.buf.extend_from_slice(k);
                if let Some(v) = v {
                    self.out.buf.extend_from_slice(b"=");
                    self.out.buf.extend_from_slice(v);
                }
            }
        }
        if self.out.buf.len() > start {
            self.out.buf.extend_from_slice(b" ");
        }
        // The encoder checks the message proper; the tags before it are
        // ours (a time stamp) or were checked when parsed.
        let mut e = Encoder::new(&mut self.out.buf);
        e.source(r.source).command(r.command);
        let n = r.params.len();
        for (i, p) in r.params.iter().enumerate() {
            if i + 1 == n {
                if is_text_command(r.command) {
                    e.trailing(p);
                } else {
                    e.param_last(p);
                }
            } else {
                e.param(p);
            }
        }
        if e.finish_truncating().is_err() {
            self.out.buf.truncate(start);
            return;
        }
        let msg = self.out.buf.split_off(start).freeze();
        r.cache[v] = Some(msg.clone());
        self.deliver(conn, msg);
    }

    /// Sends `relay` to every member of the channel `key` (except `skip`).
    fn relay_channel(&mut self, key: &[u8], skip: Option<ConnId>, r: &mut Relay<'_>) {
        let members: Vec<ConnId> = match self.channels.get(key) {
            Some(ch) => ch.members.keys().copied().collect(),
            None => return,
        };
        for m in members {
            if Some(m) != skip {
                self.relay_to(m, r);
            }
        }
    }

    /// Everyone sharing a channel with `conn`, and `conn` itself.
    fn audience(&self, conn: ConnId) -> BTreeSet<ConnId> {
        let mut set = BTreeSet::new();
        set.insert(conn);
        if let Some(c) = self.clients.get(&conn) {
            for key in &c.channels {
                if let Some(ch) = self.channels.get(key) {
                    set.extend(ch.members.keys().copied());
                }
            }
        }
        set
    }

    fn need_more(&mut self, conn: ConnId, cmd: &str) {
        self.numeric(
            conn,
            ERR_NEEDMOREPARAMS,
            &[cmd.as_bytes()],
            b"Not enough parameters",
        );
    }

    pub(super) fn dispatch(&mut self, conn: ConnId, msg: &Message) {
        let Some(c) = self.clients.get(&conn) else {
            return;
        };
        let registered = c.registered;
        let mut cmd_buf = [0u8; 16];
        let raw = msg.command().as_bytes();
        let n = raw.len().min(cmd_buf.len());
        cmd_buf[..n].copy_from_slice(&raw[..n]);
        cmd_buf[..n].make_ascii_uppercase();
        let cmd = core::str::from_utf8(&cmd_buf[..n]).unwrap_or("");
        match cmd {
            "CAP" => return self.cap(conn, msg),
            "PASS" => {
                if registered {
                    self.numeric(conn, ERR_ALREADYREGISTERED, &[], b"You may not reregister");
                }
                return;
            }
            "NICK" => return self.nick_cmd(conn, msg),
            "USER" => return self.user(conn, msg),
            "PING" => return self.ping(conn, msg),
            "PONG" => return,
            "QUIT" => {
                let reason = match msg.param(0) {
                    Some(r) => {
                        let mut v = Vec::from(&b"Quit: "[..]);
                        v.extend_from_slice(r);
                        v
                    }
                    None => Vec::from(&b"Client Quit"[..]),
                };
                self.kill(conn, &reason, Close::Graceful);
                return;
            }
            _ => {}
        }
        if !registered {
            self.numeric(conn, ERR_NOTREGISTERED, &[], b"You have not registered");
            return;
        }
        match cmd {
            "JOIN" => self.join(conn, msg),
            "PART" => self.part(conn, msg),
            "PRIVMSG" => self.message(conn, msg, false),
            "NOTICE" => self.message(conn, msg, true),
            "TAGMSG" => self.tagmsg(conn, msg),
            "TOPIC" => self.topic(conn, msg),
            "NAMES" => self.names_cmd(conn, msg),
            "LIST" => self.list(conn, msg),
            "WHO" => self.who(conn, msg),
            "WHOIS" => self.whois(conn, msg),
            "MODE" => self.mode(conn, msg),
            "KICK" => self.kick(conn, msg),
            "INVITE" => self.invite(conn, msg),
            "AWAY" => self.away(conn, msg),
            "MOTD" => self.motd(conn),
            "LUSERS" => self.lusers(conn),
            _ => self.numeric(conn, ERR_UNKNOWNCOMMAND, &[raw], b"Unknown command"),
        }
    }

    // ------------------------------------------------------------ registration

    fn cap(&mut self, conn: ConnId, msg: &Message) {
        let sub = msg.param(0).unwrap_or_default().to_ascii_uppercase();
        let registered = self.clients.get(&conn).is_some_and(|c| c.registered);
        let nick: Bytes = self
            .clients
            .get(&conn)
            .map(|c| c.nick.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| Bytes::from_static(b"*"));
        let reply = |s: &mut Server, sub: &[u8], text: &[u8]| {
            let mut e = Encoder::new(&mut s.out.buf);
            e.source(s.cfg.name.as_bytes())
                .command("CAP")
                .param(&nick)
                .param(sub)
                .trailing(text);
            if e.finish_truncating().is_ok() {
                s.flush_to(conn);
            }
        };
        match &sub[..] {
            b"LS" => {
                if !registered {
                    if let Some(c) = self.clients.get_mut(&conn) {
                        c.cap_negotiating = true;
                    }
                }
                let names: Vec<&str> = Caps::ALL.iter().map(|(n, _)| *n).collect();
                reply(self, b"LS", names.join(" ").as_bytes());
            }
            b"LIST" => {
                let caps = self.clients.get(&conn).map(|c| c.caps).unwrap_or_default();
                let names: Vec<&str> = Caps::ALL
                    .iter()
                    .filter(|(_, b)| caps.has(*b))
                    .map(|(n, _)| *n)
                    .collect();
                reply(self, b"LIST", names.join(" ").as_bytes());
            }
            b"REQ" => {
                if !registered {
                    if let Some(c) = self.clients.get_mut(&conn) {
                        c.cap_negotiating = true;
                    }
                }
                let want = msg.param(1).unwrap_or_default();
                let mut changes = Vec::new();
                let mut ok = true;
                for item in want.split(|b| *b == b' ').filter(|i| !i.is_empty()) {
                    let (off, name) = match item.strip_prefix(b"-") {
                        Some(n) => (true, n),
                        None => (false, item),
                    };
                    match Caps::by_name(name) {
                        Some(bit) => changes.push((off, bit)),
                        None => ok = false,
                    }
                }
                if ok && !changes.is_empty() {
                    if let Some(c) = self.clients.get_mut(&conn) {
                        for (off, bit) in changes {
                            if off {
                                c.caps.0 &= !bit;
                            } else {
                                c.caps.0 |= bit;
                            }
                        }
                    }
                    reply(self, b"ACK", want);
                } else {
                    reply(self, b"NAK", want);
                }
            }
            b"END" => {
                if let Some(c) = self.clients.get_mut(&conn) {
                    c.cap_negotiating = false;
                }
                self.try_register(conn);
            }
            _ => {
                let sub = msg.param(0).unwrap_or(b"*");
                let sub = if sub.is_empty() || sub.contains(&b' ') || sub[0] == b':' {
                    &b"*"[..]
                } else {
                    sub
                };
                self.numeric(conn, 410, &[sub], b"Invalid CAP command");
            }
        }
    }

    fn valid_nick(&self, n: &[u8]) -> bool {
        let special = |b: u8| b"[]\\`_^{|}".contains(&b);
        match n.split_first() {
            Some((&f, rest)) => {
                n.len() <= self.cfg.nicklen
                    && (f.is_ascii_alphabetic() || special(f))
                    && rest
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || special(b) || b == b'-')
            }
            None => false,
        }
    }

    fn nick_cmd(&mut self, conn: ConnId, msg: &Message) {
        let Some(new) = msg.param(0).filter(|n| !n.is_empty()) else {
            self.numeric(conn, ERR_NONICKNAMEGIVEN, &[], b"No nickname given");
            return;
        };
        if !self.valid_nick(new) {
            let shown: &[u8] = if new.contains(&b' ') || new[0] == b':' {
                b"*"
            } else {
                new
            };
            self.numeric(conn, ERR_ERRONEUSNICKNAME, &[shown], b"Erroneous nickname");
            return;
        }
        let key = self.fold(new);
        if let Some(&owner) = self.nicks.get(&key) {
            if owner != conn {
                self.numeric(
                    conn,
                    ERR_NICKNAMEINUSE,
                    &[new],
                    b"Nickname is already in use",
                );
                return;
            }
        }
        let Some(c) = self.clients.get(&conn) else {
            return;
        };
        if c.nick.as_ref() == new {
            return;
        }
        let old_key = self.fold(&c.nick);
        let old_source = c.source.clone();
        let registered = c.registered;
        if self.nicks.get(&old_key) == Some(&conn) {
            self.nicks.remove(&old_key);
        }
        self.nicks.insert(key, conn);
        let new = Bytes::copy_from_slice(new);
        if let Some(c) = self.clients.get_mut(&conn) {
            c.nick = new.clone();
            c.source = make_source(&c.nick, &c.user, &c.host);
        }
        if registered {
            let params: [&[u8]; 1] = [&new];
            let mut r = Relay::new(&old_source, "NICK", &params);
            for m in self.audience(conn) {
                self.relay_to(m, &mut r);
            }
        } else {
            self.try_register(conn);
        }
    }

    fn user(&mut self, conn: ConnId, msg: &Message) {
        let Some(c) = self.clients.get(&conn) else {
            return;
        };
        if c.registered {
            self.numeric(conn, ERR_ALREADYREGISTERED, &[], b"You may not reregister");
            return;
        }
        if msg.len() < 4 || msg.param(0).is_some_and(<[u8]>::is_empty) {
            self.need_more(conn, "USER");
            return;
        }
        let user: Vec<u8> = msg
            .param(0)
            .unwrap_or_default()
            .iter()
            .copied()
            .filter(|b| b.is_ascii_graphic() && !matches!(b, b'@' | b'!'))
            .take(10)
            .collect();
        let user = if user.is_empty() {
            Bytes::from_static(b"user")
        } else {
            Bytes::from(user)
        };
        let realname = msg.param_bytes(3).unwrap_or_default();
        if let Some(c) = self.clients.get_mut(&conn) {
            c.user = user;
            c.realname = realname;
            c.source = make_source(&c.nick, &c.user, &c.host);
        }
        self.try_register(conn);
    }

    fn try_register(&mut self, conn: ConnId) {
        let Some(c) = self.clients.get_mut(&conn) else {
            return;
        };
        if c.registered || c.cap_negotiating || c.nick.is_empty() || c.user.is_empty() {
            return;
        }
        c.registered = true;
        let nick = alloc::string::String::from_utf8_lossy(&c.nick).into_owned();
        let source = c.source.clone();
        self.out.event(ServerEvent::Registered { conn, nick });
        let name = self.cfg.name.clone();
        let network = self.cfg.network.clone();
        let mut welcome = format!("Welcome to the {network} IRC Network ").into_bytes();
        welcome.extend_from_slice(&source);
        self.numeric(conn, RPL_WELCOME, &[], &welcome);
        self.numeric(
            conn,
            RPL_YOURHOST,
            &[],
            format!("Your host is {name}, running version {VERSION}").as_bytes(),
        );
        let created = format!("{}", self.started.to_civil().rfc3339());
        self.numeric(
            conn,
            RPL_CREATED,
            &[],
            format!("This server was created {created}").as_bytes(),
        );
        self.numeric_params(
            conn,
            RPL_MYINFO,
            &[
                name.as_bytes(),
                VERSION.as_bytes(),
                b"i",
                b"biklmnotv",
                b"bklov",
            ],
        );
        let cfg = &self.cfg;
        let tokens = [
            format!("CASEMAPPING={}", cfg.casemapping.name()),
            "CHANTYPES=#".into(),
            "CHANMODES=b,k,l,imnt".into(),
            "PREFIX=(ov)@+".into(),
            format!("CHANLIMIT=#:{}", cfg.max_channels),
            format!("NICKLEN={}", cfg.nicklen),
            format!("CHANNELLEN={}", cfg.channellen),
            format!("TOPICLEN={}", cfg.topiclen),
            format!("KICKLEN={}", cfg.kicklen),
            format!("AWAYLEN={}", cfg.awaylen),
            format!("MAXTARGETS={}", cfg.max_targets),
            format!("MAXLIST=b:{}", cfg.max_bans),
            "MODES=4".into(),
            format!("NETWORK={}", escape_isupport(&cfg.network)),
        ];
        for chunk in tokens.chunks(12) {
            let params: Vec<&[u8]> = chunk.iter().map(|t| t.as_bytes()).collect();
            self.numeric(conn, RPL_ISUPPORT, &params, b"are supported by this server");
        }
        self.lusers(conn);
        self.motd(conn);
    }

    /// A numeric whose last parameter is not text.
    fn numeric_params(&mut self, conn: ConnId, code: u16, params: &[&[u8]]) {
        let Some(c) = self.clients.get(&conn) else {
            return;
        };
        let nick: &[u8] = if c.nick.is_empty() { b"*" } else { &c.nick };
        let mut e = Encoder::new(&mut self.out.buf);
        e.source(self.cfg.name.as_bytes()).numeric(code).param(nick);
        let n = params.len();
        for (i, p) in params.iter().enumerate() {
            if i + 1 == n {
                e.param_last(p);
            } else {
                e.param(p);
            }
        }
        if e.finish_truncating().is_ok() {
            self.flush_to(conn);
        }
    }

    fn ping(&mut self, conn: ConnId, msg: &Message) {
        let Some(token) = msg.param(0) else {
            self.numeric(conn, ERR_NOORIGIN, &[], b"No origin specified");
            return;
        };
        let mut e = Encoder::new(&mut self.out.buf);
        e.source(self.cfg.name.as_bytes())
            .command("PONG")
            .param(self.cfg.name.as_bytes())
            .trailing(token);
        if e.finish().is_ok() {
            self.flush_to(conn);
        }
    }

    pub(super) fn motd(&mut self, conn: ConnId) {
        if self.cfg.motd.is_empty() {
            self.numeric(conn, ERR_NOMOTD, &[], b"MOTD File is missing");
            return;
        }
        let name = self.cfg.name.clone();
        self.numeric(
            conn,
            RPL_MOTDSTART,
            &[],
            format!("- {name} Message of the day - ").as_bytes(),
        );
        let lines = self.cfg.motd.clone();
        for l in lines {
            self.numeric(conn, RPL_MOTD, &[], format!("- {l}").as_bytes());
        }
        self.numeric(conn, RPL_ENDOFMOTD, &[], b"End of /MOTD command.");
    }

    pub(super) fn lusers(&mut self, conn: ConnId) {
        let users = self
            .clients
            .values()
            .filter(|c| c.registered && !c.gone)
            .count();
        let invisible = self
            .clients
            .values()
            .filter(|c| c.registered && !c.gone && c.invisible)
            .count();
        let unknown = self.clients.values().filter(|c| !c.registered).count();
        let chans = self.channels.len();
        self.numeric(
            conn,
            RPL_LUSERCLIENT,
            &[],
            format!(
                "There are {} users and {invisible} invisible on 1 servers",
                users - invisible
            )
            .as_bytes(),
        );
        self.numeric(
            conn,
            RPL_LUSERUNKNOWN,
            &[format!("{unknown}").as_bytes()],
            b"unknown connection(s)",
        );
        self.numeric(
            conn,
            RPL_LUSERCHANNELS,
            &[format!("{chans}").as_bytes()],
            b"channels formed",
        );
        self.numeric(
            conn,
            RPL_LUSERME,
            &[],
            format!("I have {users} clients and 0 servers").as_bytes(),
        );
    }

    // ------------------------------------------------------------ channels

    fn valid_channel(&self, name: &[u8]) -> bool {
        name.first() == Some(&b'#')
            && name.len() > 1
            && name.len() <= self.cfg.channellen
            && !name.iter().any(|b| matches!(b, b' ' | b',' | 7))
    }

    fn join(&mut self, conn: ConnId, msg: &Message) {
        let Some(list) = msg.param(0) else {
            self.need_more(conn, "JOIN");
            return;
        };
        if list == b"0" {
            let chans: Vec<Vec<u8>> = self
                .clients
                .get(&conn)
                .map(|c| c.channels.iter().cloned().collect())
                .unwrap_or_default();
            for key in chans {
                self.leave(conn, &key, b"Left all channels");
            }
            return;
        }
        let keys: Vec<&[u8]> = msg
            .param(1)
            .map(|k| k.split(|b| *b == b',').collect())
            .unwrap_or_default();
        for (i, name) in list.split(|b| *b == b',').enumerate() {
            if i >= self.cfg.max_targets * 4 {
                break;
            }
            let key = keys.get(i).copied().filter(|k| !k.is_empty());
            self.join_one(conn, name, key);
        }
    }

    fn join_one(&mut self, conn: ConnId, name: &[u8], key: Option<&[u8]>) {
        if !self.valid_channel(name) {
            let shown: &[u8] = if name.is_empty() { b"*" } else { name };
            self.numeric(conn, ERR_NOSUCHCHANNEL, &[shown], b"No such channel");
            return;
        }
        let folded = self.fold(name);
        let Some(c) = self.clients.get(&conn) else {
            return;
        };
        if c.channels.contains(&folded) {
            return;
        }
        if c.channels.len() >= self.cfg.max_channels {
            self.numeric(
                conn,
                ERR_TOOMANYCHANNELS,
                &[name],
                b"You have joined too many channels",
            );
            return;
        }
        let source = c.source.clone();
        let cm = self.cfg.casemapping;
        let now = self.now.wall.secs();
        let creating = !self.channels.contains_key(&folded);
        if let Some(ch) = self.channels.get(&folded) {
            let invited = ch.invited.contains(&conn);
            let refusal = if ch.key.is_some() && ch.key.as_deref() != key {
                Some((ERR_BADCHANNELKEY, &b"Cannot join channel (+k)"[..]))
            } else if ch.limit.is_some_and(|l| ch.members.len() >= l) {
                Some((ERR_CHANNELISFULL, &b"Cannot join channel (+l)"[..]))
            } else if ch.invite_only && !invited {
                Some((ERR_INVITEONLYCHAN, &b"Cannot join channel (+i)"[..]))
            } else if !invited && ch.is_banned(&source, cm) {
                Some((ERR_BANNEDFROMCHAN, &b"Cannot join channel (+b)"[..]))
            } else {
                None
            };
            if let Some((code, text)) = refusal {
                let shown = ch.name.clone();
                self.numeric(conn, code, &[&shown], text);
                return;
            }
        }
        let ch = self
            .channels
            .entry(folded.clone())
            .or_insert_with(|| Channel::new(Bytes::copy_from_slice(name), now));
        ch.invited.remove(&conn);
        ch.members.insert(
            conn,
            Member {
                op: creating,
                voice: false,
            },
        );
        let display = ch.name.clone();
        if let Some(c) = self.clients.get_mut(&conn) {
            c.channels.insert(folded.clone());
        }
        let params: [&[u8]; 1] = [&display];
        let mut r = Relay::new(&source, "JOIN", &params);
        self.relay_channel(&folded, None, &mut r);
        if let Some(t) = self.channels.get(&folded).and_then(|ch| ch.topic.clone()) {
            self.send_topic(conn, &display, &t);
        }
        self.names(conn, &folded, &display);
    }

    fn send_topic(&mut self, conn: ConnId, display: &[u8], t: &Topic) {
        self.numeric(conn, RPL_TOPIC, &[display], &t.text);
        self.numeric_params(
            conn,
            RPL_TOPICWHOTIME,
            &[display, &t.setter, format!("{}", t.at).as_bytes()],
        );
    }

    /// 353 lines (as many as needed) and 366 for one channel. Someone
    /// outside the channel does not see its `+i` members (RFC 2812
    /// §3.2.5).
    fn names(&mut self, conn: ConnId, folded: &[u8], display: &[u8]) {
        let list = self.visible_members(conn, folded);
        self.name_lines(conn, display, list);
        self.numeric(conn, RPL_ENDOFNAMES, &[display], b"End of /NAMES list.");
    }

    /// The prefixed nicks of a channel's members that `conn` may see.
    fn visible_members(&self, conn: ConnId, folded: &[u8]) -> Vec<Vec<u8>> {
        let Some(ch) = self.channels.get(folded) else {
            return Vec::new();
        };
        let inside = ch.members.contains_key(&conn);
        ch.members
            .iter()
            .filter_map(|(id, m)| {
                let c = self.clients.get(id)?;
                if c.invisible && !inside {
                    return None;
                }
                let mut s = m.prefix().to_vec();
                s.extend_from_slice(&c.nick);
                Some(s)
            })
            .collect()
    }

    /// `353 me = <display> :a b c`, in as many lines as the names need.
    fn name_lines(&mut self, conn: ConnId, display: &[u8], list: Vec<Vec<u8>>) {
        let kind: &[u8] = if display == b"*" { b"*" } else { b"=" };
        let mut line = Vec::new();
        for n in list {
            if !line.is_empty() && line.len() + n.len() + 1 > 400 {
                self.numeric(conn, RPL_NAMREPLY, &[kind, display], &line);
                line.clear();
            }
            if !line.is_empty() {
                line.push(b' ');
            }
            line.extend_from_slice(&n);
        }
        if !line.is_empty() {
            self.numeric(conn, RPL_NAMREPLY, &[kind, display], &line);
        }
    }

    fn names_cmd(&mut self, conn: ConnId, msg: &Message) {
        let Some(list) = msg.param(0).filter(|l| !l.is_empty()) else {
            return self.names_all(conn);
        };
        for name in list.split(|b| *b == b',').take(self.cfg.max_targets) {
            if name.is_empty() || name.contains(&b' ') || name[0] == b':' {
                continue;
            }
            let folded = self.fold(name);
            let display = self
                .channels
                .get(&folded)
                .map(|c| c.name.clone())
                .unwrap_or_else(|| Bytes::copy_from_slice(name));
            self.names(conn, &folded, &display);
        }
    }

    /// `NAMES` alone (RFC 2812 §3.2.5): every channel with the members
    /// `conn` may see, then the visible users on no channel as channel
    /// `*`, and one `366 *` at the end. (Every channel is visible: there
    /// are no `+s`/`+p` channels.) The send-queue bound caps the reply.
    fn names_all(&mut self, conn: ConnId) {
        let keys: Vec<(Vec<u8>, Bytes)> = self
            .channels
            .iter()
            .map(|(k, ch)| (k.clone(), ch.name.clone()))
            .collect();
        for (folded, display) in keys {
            let list = self.visible_members(conn, &folded);
            if !list.is_empty() {
                self.name_lines(conn, &display, list);
            }
        }
        let lonely: Vec<Vec<u8>> = self
            .clients
            .values()
            .filter(|c| c.registered && !c.gone && !c.invisible && c.channels.is_empty())
            .map(|c| c.nick.to_vec())
            .collect();
        self.name_lines(conn, b"*", lonely);
        self.numeric(conn, RPL_ENDOFNAMES, &[b"*"], b"End of /NAMES list.");
    }

    /// Removes `conn` from a channel, telling its members.
    fn leave(&mut self, conn: ConnId, folded: &[u8], reason: &[u8]) {
        let Some(source) = self.clients.get(&conn).map(|c| c.source.clone()) else {
            return;
        };
        let Some(display) = self.channels.get(folded).map(|c| c.name.clone()) else {
            return;
        };
        let params: [&[u8]; 2] = [&display, reason];
        let n = if reason.is_empty() { 1 } else { 2 };
        let mut r = Relay::new(&source, "PART", &params[..n]);
        self.relay_channel(folded, None, &mut r);
        self.remove_member(conn, folded);
    }

    fn remove_member(&mut self, conn: ConnId, folded: &[u8]) {
        if let Some(ch) = self.channels.get_mut(folded) {
            ch.members.remove(&conn);
            if ch.members.is_empty() {
                self.channels.remove(folded);
            }
        }
        if let Some(c) = self.clients.get_mut(&conn) {
            c.channels.remove(folded);
        }
    }

    fn part(&mut self, conn: ConnId, msg: &Message) {
        let Some(list) = msg.param(0) else {
            self.need_more(conn, "PART");
            return;
        };
        let reason = msg.param(1).unwrap_or_default();
        for name in list.split(|b| *b == b',').take(self.cfg.max_targets * 4) {
            if name.is_empty() {
                continue;
            }
            let folded = self.fold(name);
            if !self.channels.contains_key(&folded) {
                self.numeric(conn, ERR_NOSUCHCHANNEL, &[name], b"No such channel");
                continue;
            }
            let member = self
                .clients
                .get(&conn)
                .is_some_and(|c| c.channels.contains(&folded));
            if !member {
                self.numeric(
                    conn,
                    ERR_NOTONCHANNEL,
                    &[name],
                    b"You're not on that channel",
                );
                continue;
            }
            self.leave(conn, &folded, reason);
        }
    }

    fn message(&mut self, conn: ConnId, msg: &Message, notice: bool) {
        let cmd = if notice { "NOTICE" } else { "PRIVMSG" };
        let Some(targets) = msg.param(0).filter(|t| !t.is_empty()) else {
            if !notice {
                self.numeric(
                    conn,
                    ERR_NORECIPIENT,
                    &[],
                    format!("No recipient given ({cmd})").as_bytes(),
                );
            }
            return;
        };
        let Some(text) = msg.param(1).filter(|t| !t.is_empty()) else {
            if !notice {
                self.numeric(conn, ERR_NOTEXTTOSEND, &[], b"No text to send");
            }
            return;
        };
        let Some(c) = self.clients.get_mut(&conn) else {
            return;
        };
        c.last_spoke = self.now.mono;
        let source = c.source.clone();
        let echo = c.caps.has(Caps::ECHO);
        let cm = self.cfg.casemapping;
        let list: Vec<&[u8]> = targets.split(|b| *b == b',').collect();
        if list.len() > self.cfg.max_targets {
            if !notice {
                self.numeric(conn, ERR_TOOMANYTARGETS, &[targets], b"Too many recipients");
            }
            return;
        }
        let client_tags: Vec<(&[u8], Option<&[u8]>)> = msg
            .tags()
            .filter(|t| t.is_client_only())
            .map(|t| (t.key, t.raw_value))
            .collect();
        for target in list {
            if target.is_empty() || target.contains(&b' ') || target[0] == b':' {
                continue;
            }
            let folded = cm.fold(target);
            let params: [&[u8]; 2] = [target, text];
            let mut r = Relay::new(&source, cmd, &params);
            r.client_tags.clone_from(&client_tags);
            if target[0] == b'#' {
                let Some(ch) = self.channels.get(&folded) else {
                    if !notice {
                        self.numeric(conn, ERR_NOSUCHNICK, &[target], b"No such nick/channel");
                    }
                    continue;
                };
                if !ch.can_speak(conn, &source, cm) {
                    if !notice {
                        self.numeric(
                            conn,
                            ERR_CANNOTSENDTOCHAN,
                            &[target],
                            b"Cannot send to channel",
                        );
                    }
                    continue;
                }
                let skip = if echo { None } else { Some(conn) };
                self.relay_channel(&folded, skip, &mut r);
                if echo
                    && !self
                        .channels
                        .get(&folded)
                        .is_some_and(|c| c.members.contains_key(&conn))
                {
                    self.relay_to(conn, &mut r);
                }
            } else {
                let Some(&to) = self.nicks.get(&folded) else {
                    if !notice {
                        self.numeric(conn, ERR_NOSUCHNICK, &[target], b"No such nick/channel");
                    }
                    continue;
                };
                self.relay_to(to, &mut r);
                if echo && to != conn {
                    self.relay_to(conn, &mut r);
                }
                if !notice {
                    if let Some((nick, away)) = self
                        .clients
                        .get(&to)
                        .and_then(|c| c.away.clone().map(|a| (c.nick.clone(), a)))
                    {
                        self.numeric(conn, RPL_AWAY, &[&nick], &away);
                    }
                }
            }
        }
    }

    /// `TAGMSG target` (IRCv3 message-tags): only client tags, no text,
    /// relayed to the `message-tags` clients among the recipients (and
    /// echoed with `echo-message`); the same permission checks as PRIVMSG.
    fn tagmsg(&mut self, conn: ConnId, msg: &Message) {
        let Some(target) = msg
            .param(0)
            .and_then(|t| t.split(|b| *b == b',').next())
            .filter(|t| !t.is_empty() && !t.contains(&b' ') && t[0] != b':')
        else {
            self.numeric(conn, ERR_NORECIPIENT, &[], b"No recipient given (TAGMSG)");
            return;
        };
        let Some(c) = self.clients.get(&conn) else {
            return;
        };
        let source = c.source.clone();
        let echo = c.caps.has(Caps::ECHO);
        let cm = self.cfg.casemapping;
        let folded = cm.fold(target);
        let recipients: Vec<ConnId> = if target[0] == b'#' {
            let Some(ch) = self.channels.get(&folded) else {
                self.numeric(conn, ERR_NOSUCHNICK, &[target], b"No such nick/channel");
                return;
            };
            if !ch.can_speak(conn, &source, cm) {
                self.numeric(
                    conn,
                    ERR_CANNOTSENDTOCHAN,
                    &[target],
                    b"Cannot send to channel",
                );
                return;
            }
            ch.members.keys().copied().filter(|m| *m != conn).collect()
        } else {
            let Some(&to) = self.nicks.get(&folded) else {
                self.numeric(conn, ERR_NOSUCHNICK, &[target], b"No such nick/channel");
                return;
            };
            vec![to]
        };
        let params: [&[u8]; 1] = [target];
        let mut r = Relay::new(&source, "TAGMSG", &params);
        r.client_tags = msg
            .tags()
            .filter(|t| t.is_client_only())
            .map(|t| (t.key, t.raw_value))
            .collect();
        let tagged = |s: &Server, id: &ConnId| {
            s.clients
                .get(id)
                .is_some_and(|c| c.caps.has(Caps::MESSAGE_TAGS))
        };
        for to in recipients {
            if tagged(self, &to) {
                self.relay_to(to, &mut r);
            }
        }
        if echo && tagged(self, &conn) {
            self.relay_to(conn, &mut r);
        }
    }

    fn topic(&mut self, conn: ConnId, msg: &Message) {
        let Some(name) = msg.param(0) else {
            self.need_more(conn, "TOPIC");
            return;
        };
        let folded = self.fold(name);
        let Some(ch) = self.channels.get(&folded) else {
            self.numeric(conn, ERR_NOSUCHCHANNEL, &[name], b"No such channel");
            return;
        };
        let display = ch.name.clone();
        let member = ch.members.contains_key(&conn);
        let Some(text) = msg.param(1) else {
            match ch.topic.clone() {
                Some(t) => self.send_topic(conn, &display, &t),
                None => self.numeric(conn, RPL_NOTOPIC, &[&display], b"No topic is set"),
            }
            return;
        };
        if !member {
            self.numeric(
                conn,
                ERR_NOTONCHANNEL,
                &[&display],
                b"You're not on that channel",
            );
            return;
        }
        if ch.topic_ops_only && !ch.is_op(conn) {
            self.numeric(
                conn,
                ERR_CHANOPRIVSNEEDED,
                &[&display],
                b"You're not channel operator",
            );
            return;
        }
        let text = &text[..floor_char(text, self.cfg.topiclen)];
        let Some(c) = self.clients.get(&conn) else {
            return;
        };
        let source = c.source.clone();
        let at = self.now.wall.secs();
        if let Some(ch) = self.channels.get_mut(&folded) {
            ch.topic = (!text.is_empty()).then(|| Topic {
                text: Bytes::copy_from_slice(text),
                setter: source.clone(),
                at,
            });
        }
        let params: [&[u8]; 2] = [&display, text];
        let mut r = Relay::new(&source, "TOPIC", &params);
        self.relay_channel(&folded, None, &mut r);
    }

    fn list(&mut self, conn: ConnId, msg: &Message) {
        self.numeric_params(conn, RPL_LISTSTART, &[b"Channel", b"Users  Name"]);
        let wanted: Option<BTreeSet<Vec<u8>>> = msg
            .param(0)
            .map(|l| l.split(|b| *b == b',').map(|n| self.fold(n)).collect());
        let rows: Vec<(Bytes, usize, Bytes)> = self
            .channels
            .iter()
            .filter(|(k, _)| wanted.as_ref().map_or(true, |w| w.contains(*k)))
            .map(|(_, ch)| {
                (
                    ch.name.clone(),
                    ch.members.len(),
                    ch.topic
                        .as_ref()
                        .map(|t| t.text.clone())
                        .unwrap_or_default(),
                )
            })
            .collect();
        for (name, n, topic) in rows {
            self.numeric(conn, RPL_LIST, &[&name, format!("{n}").as_bytes()], &topic);
        }
        self.numeric(conn, RPL_LISTEND, &[], b"End of /LIST");
    }

    fn who_line(&mut self, conn: ConnId, chan: &[u8], target: ConnId, member: Option<Member>) {
        let Some(t) = self.clients.get(&target) else {
            return;
        };
        let mut flags = Vec::from(if t.away.is_some() {
            &b"G"[..]
        } else {
            &b"H"[..]
        });
        if let Some(m) = member {
            flags.extend_from_slice(m.prefix());
        }
        let (user, host, nick) = (t.user.clone(), t.host.clone(), t.nick.clone());
        let mut real = Vec::from(&b"0 "[..]);
        real.extend_from_slice(&t.realname);
        let name = self.cfg.name.clone();
        self.numeric(
            conn,
            RPL_WHOREPLY,
            &[chan, &user, &host, name.as_bytes(), &nick, &flags],
            &real,
        );
    }

    fn who(&mut self, conn: ConnId, msg: &Message) {
        let mask = msg.param(0).unwrap_or(b"*");
        let mask = if mask.is_empty() || mask.contains(&b' ') || mask[0] == b':' {
            &b"*"[..]
        } else {
            mask
        };
        let folded = self.fold(mask);
        if mask.first() == Some(&b'#') {
            if let Some(ch) = self.channels.get(&folded) {
                let display = ch.name.clone();
                // Outsiders do not see `+i` members (as in NAMES).
                let inside = ch.members.contains_key(&conn);
                let members: Vec<(ConnId, Member)> = ch
                    .members
                    .iter()
                    .filter(|(k, _)| inside || self.clients.get(k).is_some_and(|c| !c.invisible))
                    .map(|(k, v)| (*k, *v))
                    .collect();
                for (id, m) in members {
                    self.who_line(conn, &display, id, Some(m));
                }
            }
        } else {
            let cm = self.cfg.casemapping;
            let shared = self.audience(conn);
            let matches: Vec<ConnId> = self
                .clients
                .iter()
                .filter(|(id, c)| {
                    c.registered
                        && !c.gone
                        && (!c.invisible || shared.contains(id))
                        && mask_match(mask, &c.nick, cm)
                })
                .map(|(id, _)| *id)
                .take(200)
                .collect();
            for id in matches {
                self.who_line(conn, b"*", id, None);
            }
        }
        self.numeric(conn, RPL_ENDOFWHO, &[mask], b"End of /WHO list.");
    }

    fn whois(&mut self, conn: ConnId, msg: &Message) {
        // WHOIS [server] nick
        let Some(nick) = msg.param(if msg.len() >= 2 { 1 } else { 0 }) else {
            self.numeric(conn, ERR_NONICKNAMEGIVEN, &[], b"No nickname given");
            return;
        };
        let nick = nick.split(|b| *b == b',').next().unwrap_or_default();
        if nick.is_empty() || nick.contains(&b' ') || nick[0] == b':' {
            self.numeric(conn, ERR_NONICKNAMEGIVEN, &[], b"No nickname given");
            return;
        }
        let folded = self.fold(nick);
        let Some(&target) = self.nicks.get(&folded) else {
            self.numeric(conn, ERR_NOSUCHNICK, &[nick], b"No such nick/channel");
            self.numeric(conn, RPL_ENDOFWHOIS, &[nick], b"End of /WHOIS list.");
            return;
        };
        let Some(t) = self.clients.get(&target) else {
            return;
        };
        let (tn, user, host, real, away) = (
            t.nick.clone(),
            t.user.clone(),
            t.host.clone(),
            t.realname.clone(),
            t.away.clone(),
        );
        let idle = self.now.mono.saturating_since(t.last_spoke).as_secs();
        let signon = t.signon;
        let mut chans = Vec::new();
        for key in &t.channels {
            if let Some(ch) = self.channels.get(key) {
                if !chans.is_empty() {
                    chans.push(b' ');
                }
                if let Some(m) = ch.members.get(&target) {
                    chans.extend_from_slice(m.prefix());
                }
                chans.extend_from_slice(&ch.name);
            }
        }
        self.numeric(conn, RPL_WHOISUSER, &[&tn, &user, &host, b"*"], &real);
        if !chans.is_empty() {
            self.numeric(conn, RPL_WHOISCHANNELS, &[&tn], &chans);
        }
        let name = self.cfg.name.clone();
        self.numeric(
            conn,
            RPL_WHOISSERVER,
            &[&tn, name.as_bytes()],
            b"twill IRC server",
        );
        if let Some(a) = away {
            self.numeric(conn, RPL_AWAY, &[&tn], &a);
        }
        self.numeric(
            conn,
            RPL_WHOISIDLE,
            &[
                &tn,
                format!("{idle}").as_bytes(),
                format!("{signon}").as_bytes(),
            ],
            b"seconds idle, signon time",
        );
        self.numeric(conn, RPL_ENDOFWHOIS, &[&tn], b"End of /WHOIS list.");
    }

    fn away(&mut self, conn: ConnId, msg: &Message) {
        let text = msg.param(0).filter(|t| !t.is_empty());
        let len = self.cfg.awaylen;
        if let Some(c) = self.clients.get_mut(&conn) {
            c.away = text.map(|t| Bytes::copy_from_slice(&t[..floor_char(t, len)]));
        }
        if text.is_some() {
            self.numeric(
                conn,
                RPL_NOWAWAY,
                &[],
                b"You have been marked as being away",
            );
        } else {
            self.numeric(
                conn,
                RPL_UNAWAY,
                &[],
                b"You are no longer marked as being away",
            );
        }
    }

    fn kick(&mut self, conn: ConnId, msg: &Message) {
        let (Some(name), Some(users)) = (msg.param(0), msg.param(1)) else {
            self.need_more(conn, "KICK");
            return;
        };
        let folded = self.fold(name);
        let Some(ch) = self.channels.get(&folded) else {
            self.numeric(conn, ERR_NOSUCHCHANNEL, &[name], b"No such channel");
            return;
        };
        let display = ch.name.clone();
        if !ch.members.contains_key(&conn) {
            self.numeric(
                conn,
                ERR_NOTONCHANNEL,
                &[&display],
                b"You're not on that channel",
            );
            return;
        }
        if !ch.is_op(conn) {
            self.numeric(
                conn,
                ERR_CHANOPRIVSNEEDED,
                &[&display],
                b"You're not channel operator",
            );
            return;
        }
        let Some(c) = self.clients.get(&conn) else {
            return;
        };
        let source = c.source.clone();
        let kicker_nick = c.nick.clone();
        let reason = msg.param(2).unwrap_or(&kicker_nick);
        let reason = &reason[..floor_char(reason, self.cfg.kicklen)];
        for user in users.split(|b| *b == b',').take(self.cfg.max_targets) {
            let target = self.nicks.get(&self.fold(user)).copied();
            let on = target.filter(|t| {
                self.channels
                    .get(&folded)
                    .is_some_and(|ch| ch.members.contains_key(t))
            });
            let Some(t) = on else {
                if !user.is_empty() && !user.contains(&b' ') && user[0] != b':' {
                    self.numeric(
                        conn,
                        ERR_USERNOTINCHANNEL,
                        &[user, &display],
                        b"They aren't on that channel",
                    );
                }
                continue;
            };
            let tnick = self
                .clients
                .get(&t)
                .map(|c| c.nick.clone())
                .unwrap_or_default();
            let params: [&[u8]; 3] = [&display, &tnick, reason];
            let mut r = Relay::new(&source, "KICK", &params);
            self.relay_channel(&folded, None, &mut r);
            self.remove_member(t, &folded);
        }
    }

    fn invite(&mut self, conn: ConnId, msg: &Message) {
        let (Some(nick), Some(name)) = (msg.param(0), msg.param(1)) else {
            self.need_more(conn, "INVITE");
            return;
        };
        let Some(&target) = self.nicks.get(&self.fold(nick)) else {
            self.numeric(conn, ERR_NOSUCHNICK, &[nick], b"No such nick/channel");
            return;
        };
        let folded = self.fold(name);
        let display = match self.channels.get(&folded) {
            Some(ch) => {
                if !ch.members.contains_key(&conn) {
                    let d = ch.name.clone();
                    self.numeric(conn, ERR_NOTONCHANNEL, &[&d], b"You're not on that channel");
                    return;
                }
                if ch.members.contains_key(&target) {
                    let d = ch.name.clone();
                    self.numeric(
                        conn,
                        ERR_USERONCHANNEL,
                        &[nick, &d],
                        b"is already on channel",
                    );
                    return;
                }
                if ch.invite_only && !ch.is_op(conn) {
                    let d = ch.name.clone();
                    self.numeric(
                        conn,
                        ERR_CHANOPRIVSNEEDED,
                        &[&d],
                        b"You're not channel operator",
                    );
                    return;
                }
                ch.name.clone()
            }
            None => {
                if !self.valid_channel(name) {
                    self.numeric(conn, ERR_NOSUCHCHANNEL, &[name], b"No such channel");
                    return;
                }
                Bytes::copy_from_slice(name)
            }
        };
        if let Some(ch) = self.channels.get_mut(&folded) {
            // Bounded: at most one entry per connected client.
            ch.invited.insert(target);
        }
        let Some(c) = self.clients.get(&conn) else {
            return;
        };
        let source = c.source.clone();
        let (tnick, away) = match self.clients.get(&target) {
            Some(t) => (t.nick.clone(), t.away.clone()),
            None => return,
        };
        self.numeric_params(conn, RPL_INVITING, &[&tnick, &display]);
        let params: [&[u8]; 2] = [&tnick, &display];
        let mut r = Relay::new(&source, "INVITE", &params);
        self.relay_to(target, &mut r);
        if let Some(a) = away {
            self.numeric(conn, RPL_AWAY, &[&tnick], &a);
        }
    }

    // ------------------------------------------------------------ modes

    fn mode(&mut self, conn: ConnId, msg: &Message) {
        let Some(target) = msg.param(0) else {
            self.need_more(conn, "MODE");
            return;
        };
        if target.first() == Some(&b'#') {
            self.channel_mode(conn, msg, target);
        } else {
            self.user_mode(conn, msg, target);
        }
    }

    fn user_mode(&mut self, conn: ConnId, msg: &Message, target: &[u8]) {
        let folded = self.fold(target);
        match self.nicks.get(&folded) {
            None => {
                self.numeric(conn, ERR_NOSUCHNICK, &[target], b"No such nick/channel");
                return;
            }
            Some(&t) if t != conn => {
                self.numeric(
                    conn,
                    ERR_USERSDONTMATCH,
                    &[],
                    b"Cant change mode for other users",
                );
                return;
            }
            _ => {}
        }
        let Some(c) = self.clients.get(&conn) else {
            return;
        };
        let nick = c.nick.clone();
        let source = c.source.clone();
        let Some(modes) = msg.param(1) else {
            let m: &[u8] = if c.invisible { b"+i" } else { b"+" };
            self.numeric_params(conn, RPL_UMODEIS, &[m]);
            return;
        };
        let mut on = true;
        let mut unknown = false;
        let mut changed: Option<bool> = None;
        let before = c.invisible;
        let mut inv = before;
        for &m in modes {
            match m {
                b'+' => on = true,
                b'-' => on = false,
                b'i' => inv = on,
                _ => unknown = true,
            }
        }
        if inv != before {
            changed = Some(inv);
        }
        if let Some(c) = self.clients.get_mut(&conn) {
            c.invisible = inv;
        }
        if unknown {
            self.numeric(conn, ERR_UMODEUNKNOWNFLAG, &[], b"Unknown MODE flag");
        }
        if let Some(now) = changed {
            let m: &[u8] = if now { b"+i" } else { b"-i" };
            let params: [&[u8]; 2] = [&nick, m];
            let mut r = Relay::new(&source, "MODE", &params);
            self.relay_to(conn, &mut r);
        }
    }

    fn channel_mode(&mut self, conn: ConnId, msg: &Message, target: &[u8]) {
        let folded = self.fold(target);
        let Some(ch) = self.channels.get(&folded) else {
            self.numeric(conn, ERR_NOSUCHCHANNEL, &[target], b"No such channel");
            return;
        };
        let display = ch.name.clone();
        let Some(modes) = msg.param(1) else {
            let (m, args) = ch.mode_string(ch.members.contains_key(&conn));
            let created = format!("{}", ch.created);
            let mut params: Vec<&[u8]> = vec![&display, &m];
            params.extend(args.iter().map(Vec::as_slice));
            self.numeric_params(conn, RPL_CHANNELMODEIS, &params);
            self.numeric_params(conn, RPL_CREATIONTIME, &[&display, created.as_bytes()]);
            return;
        };
        // A bare ban-list query needs no privileges.
        let list_query = msg.len() == 2
            && modes.iter().all(|b| matches!(b, b'+' | b'b'))
            && modes.contains(&b'b');
        if list_query {
            let bans = ch.bans.clone();
            for b in bans {
                self.numeric_params(conn, RPL_BANLIST, &[&display, &b]);
            }
            self.numeric(
                conn,
                RPL_ENDOFBANLIST,
                &[&display],
                b"End of channel ban list",
            );
            return;
        }
        if !ch.is_op(conn) {
            let code = if ch.members.contains_key(&conn) {
                ERR_CHANOPRIVSNEEDED
            } else {
                ERR_NOTONCHANNEL
            };
            let text: &[u8] = if code == ERR_NOTONCHANNEL {
                b"You're not on that channel"
            } else {
                b"You're not channel operator"
            };
            self.numeric(conn, code, &[&display], text);
            return;
        }
        let Some(source) = self.clients.get(&conn).map(|c| c.source.clone()) else {
            return;
        };
        let cm = self.cfg.casemapping;
        let mut args = msg.params().skip(2);
        let mut on = true;
        let mut applied: Vec<u8> = Vec::new();
        let mut applied_sign: Option<bool> = None;
        let mut applied_args: Vec<Vec<u8>> = Vec::new();
        let mut errors: Vec<(u16, Vec<u8>, &'static [u8])> = Vec::new();
        let mut count = 0;
        for &m in modes.iter().take(32) {
            let mut record = |sign: bool, m: u8, arg: Option<&[u8]>, applied: &mut Vec<u8>| {
                if applied_sign != Some(sign) {
                    applied.push(if sign { b'+' } else { b'-' });
                    applied_sign = Some(sign);
                }
                applied.push(m);
                if let Some(a) = arg {
                    applied_args.push(a.to_vec());
                }
            };
            let Some(ch) = self.channels.get_mut(&folded) else {
                return;
            };
            match m {
                b'+' => on = true,
                b'-' => on = false,
                b't' | b'n' | b'm' | b'i' => {
                    let flag = match m {
                        b't' => &mut ch.topic_ops_only,
                        b'n' => &mut ch.no_external,
                        b'm' => &mut ch.moderated,
                        _ => &mut ch.invite_only,
                    };
                    if *flag != on {
                        *flag = on;
                        record(on, m, None, &mut applied);
                    }
                }
                b'o' | b'v' => {
                    let Some(nick) = args.next() else { continue };
                    count += 1;
                    if count > 4 {
                        continue;
                    }
                    let Some(&t) = self.nicks.get(&cm.fold(nick)) else {
                        errors.push((ERR_NOSUCHNICK, nick.to_vec(), b"No such nick/channel"));
                        continue;
                    };
                    let Some(member) = ch.members.get_mut(&t) else {
                        errors.push((
                            ERR_USERNOTINCHANNEL,
                            nick.to_vec(),
                            b"They aren't on that channel",
                        ));
                        continue;
                    };
                    let slot = if m == b'o' {
                        &mut member.op
                    } else {
                        &mut member.voice
                    };
                    if *slot != on {
                        *slot = on;
                        let shown = self
                            .clients
                            .get(&t)
                            .map(|c| c.nick.to_vec())
                            .unwrap_or_default();
                        record(on, m, Some(&shown), &mut applied);
                    }
                }
                b'k' => {
                    let arg = args.next();
                    if on {
                        let Some(k) = arg.filter(|k| !k.is_empty() && !k.contains(&b',')) else {
                            continue;
                        };
                        let k = &k[..k.len().min(23)];
                        ch.key = Some(Bytes::copy_from_slice(k));
                        record(true, b'k', Some(k), &mut applied);
                    } else if ch.key.take().is_some() {
                        record(false, b'k', Some(b"*"), &mut applied);
                    }
                }
                b'l' => {
                    if on {
                        let Some(n) = args
                            .next()
                            .and_then(|a| core::str::from_utf8(a).ok())
                            .and_then(|a| a.parse::<usize>().ok())
                            .filter(|n| *n > 0)
                        else {
                            continue;
                        };
                        ch.limit = Some(n);
                        let s = format!("{n}");
                        record(true, b'l', Some(s.as_bytes()), &mut applied);
                    } else if ch.limit.take().is_some() {
                        record(false, b'l', None, &mut applied);
                    }
                }
                b'b' => {
                    let Some(mask) = args.next() else {
                        continue;
                    };
                    count += 1;
                    if count > 4 {
                        continue;
                    }
                    let mask = normalize_mask(mask);
                    let pos = ch.bans.iter().position(|b| cm.eq(b, &mask));
                    match (on, pos) {
                        (true, None) if ch.bans.len() < self.cfg.max_bans => {
                            ch.bans.push(Bytes::from(mask.clone()));
                            record(true, b'b', Some(&mask), &mut applied);
                        }
                        (false, Some(i)) => {
                            ch.bans.remove(i);
                            record(false, b'b', Some(&mask), &mut applied);
                        }
                        _ => {}
                    }
                }
                other => {
                    errors.push((ERR_UNKNOWNMODE, vec![other], b"is unknown mode char to me"));
                }
            }
        }
        for (code, arg, text) in errors {
            let arg: &[u8] = if arg.is_empty() || arg.contains(&b' ') || arg[0] == b':' {
                b"*"
            } else {
                &arg
            };
            let params: Vec<&[u8]> = if code == ERR_USERNOTINCHANNEL {
                vec![arg, &display]
            } else {
                vec![arg]
            };
            self.numeric(conn, code, &params, text);
        }
        if applied.is_empty() {
            return;
        }
        let mut params: Vec<&[u8]> = vec![&display, &applied];
        params.extend(applied_args.iter().map(Vec::as_slice));
        let mut r = Relay::new(&source, "MODE", &params);
        self.relay_channel(&folded, None, &mut r);
    }
}

/// `nick!user@host`.
pub(super) fn make_source(nick: &[u8], user: &[u8], host: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(nick.len() + user.len() + host.len() + 2);
    v.extend_from_slice(nick);
    v.push(b'!');
    v.extend_from_slice(user);
    v.push(b'@');
    v.extend_from_slice(host);
    Bytes::from(v)
}

/// A ban mask completed to `nick!user@host` form (`bob` → `bob!*@*`).
fn normalize_mask(m: &[u8]) -> Vec<u8> {
    let m = &m[..m.len().min(100)];
    let has_bang = m.contains(&b'!');
    let has_at = m.contains(&b'@');
    let mut v = m.to_vec();
    match (has_bang, has_at) {
        (true, true) => {}
        (true, false) => v.extend_from_slice(b"@*"),
        (false, true) => {
            v = b"*!".to_vec();
            v.extend_from_slice(m);
        }
        (false, false) => v.extend_from_slice(b"!*@*"),
    }
    v
}

/// The largest index ≤ `max` that does not split a UTF-8 character.
fn floor_char(s: &[u8], max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut i = max;
    while i > 0 && (s[i] & 0xC0) == 0x80 {
        i -= 1;
    }
    i
}

/// An ISUPPORT value with spaces and `=` escaped as `\x20`, `\x3D`.
fn escape_isupport(v: &str) -> alloc::string::String {
    let mut out = alloc::string::String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            ' ' => out.push_str("\\x20"),
            '=' => out.push_str("\\x3D"),
            '\\' => out.push_str("\\x5C"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}
