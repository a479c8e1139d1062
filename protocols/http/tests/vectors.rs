//! Runs every vector of `spec-vectors/http/` through the machines under
//! `assert_chunking` (whole, byte at a time, random splits): `# codec:
//! request` cases through a [`Server`], `# codec: response` cases through
//! a [`Client`] that sent as many requests (of `# method:`) as needed.
//!
//! Expected messages are in the canonical form described in
//! `spec-vectors/README.md` (http): start line, field lines as received,
//! an empty line, the decoded body, then any trailer lines.

use bytes::Bytes;
use twill_core::testing::{assert_chunking, load_vectors, Escaped, Outcome, Sim, Step, Vector};
use twill_core::{ConnId, Input, Machine, Now, Output};
use twill_http::{
    BodyKind, Client, ClientConfig, ClientEvent, Error, Headers, Server, ServerConfig, ServerEvent,
};

const C: ConnId = ConnId(1);

fn vectors() -> Vec<Vector> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec-vectors/http");
    let v = load_vectors(dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(v.len() >= 5, "the http vectors are missing");
    v
}

fn fields(out: &mut Vec<u8>, h: &Headers) {
    for (n, v) in h.iter() {
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
}

#[derive(Debug, Default)]
struct Canon {
    messages: Vec<Vec<u8>>,
    current: Option<Vec<u8>>,
    error: Option<&'static str>,
}

impl Canon {
    fn start(&mut self, line: String, h: &Headers) {
        let mut m = line.into_bytes();
        m.extend_from_slice(b"\r\n");
        fields(&mut m, h);
        m.extend_from_slice(b"\r\n");
        self.current = Some(m);
    }
    fn body(&mut self, data: &Bytes) {
        if let Some(m) = &mut self.current {
            m.extend_from_slice(data);
        }
    }
    fn end(&mut self, trailers: &Headers) {
        if let Some(mut m) = self.current.take() {
            fields(&mut m, trailers);
            self.messages.push(m);
        }
    }
}

fn server_canon(events: &[ServerEvent]) -> Canon {
    let mut c = Canon::default();
    for e in events {
        match e {
            ServerEvent::Request(r) => {
                c.start(
                    format!(
                        "{} {} {}",
                        r.head.method(),
                        r.head.target(),
                        r.head.version().as_str()
                    ),
                    r.head.headers(),
                );
                // A request without a body is whole with its head.
                if r.body.is_empty() {
                    c.end(&Headers::default());
                }
            }
            ServerEvent::Body { data, .. } => c.body(data),
            ServerEvent::BodyEnd { trailers, .. } => c.end(trailers),
            ServerEvent::Violation { error, .. } => c.error = Some(error.kind()),
            _ => {}
        }
    }
    c
}

fn check(
    v: &Vector,
    line: usize,
    got: &Canon,
    pending: bool,
    expect: &[Vec<u8>],
    outcome: &Outcome,
) {
    let at = format!("{}:{line}", v.name);
    let got_msgs: Vec<String> = got
        .messages
        .iter()
        .map(|m| format!("{:?}", Escaped(m)))
        .collect();
    let want: Vec<String> = expect.iter().map(|m| format!("{:?}", Escaped(m))).collect();
    assert_eq!(got_msgs, want, "{at}: messages");
    match outcome {
        Outcome::Complete => {
            assert_eq!(got.error, None, "{at}");
            assert!(!pending, "{at}: input left over");
        }
        Outcome::Pending => {
            assert_eq!(got.error, None, "{at}");
            assert!(pending, "{at}: expected an incomplete message");
        }
        Outcome::Error(k) => assert_eq!(got.error, Some(k.as_str()), "{at}"),
    }
}

/// Joins consecutive body events into one, held until the next other
/// event: how a body is cut into pieces depends on how the input was cut,
/// which is the one difference chunking may make.
struct Merge<M: Machine> {
    inner: M,
    pending: Option<M::Event>,
    queue: std::collections::VecDeque<M::Event>,
    join: fn(&mut M::Event, &M::Event) -> bool,
    is_body: fn(&M::Event) -> bool,
}

impl<M: Machine> Merge<M> {
    fn new(
        inner: M,
        is_body: fn(&M::Event) -> bool,
        join: fn(&mut M::Event, &M::Event) -> bool,
    ) -> Self {
        Merge {
            inner,
            pending: None,
            queue: Default::default(),
            join,
            is_body,
        }
    }
}

impl<M: Machine> Machine for Merge<M> {
    type Event = M::Event;
    type Error = M::Error;
    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, M::Error> {
        self.inner.handle_input(now, input)
    }
    fn handle_timeout(&mut self, now: Now) {
        self.inner.handle_timeout(now)
    }
    fn poll_output(&mut self) -> Output<M::Event> {
        if let Some(e) = self.queue.pop_front() {
            return Output::Event(e);
        }
        loop {
            match self.inner.poll_output() {
                Output::Event(e) if (self.is_body)(&e) => {
                    let joined = match &mut self.pending {
                        Some(p) => (self.join)(p, &e),
                        None => {
                            self.pending = Some(e);
                            continue;
                        }
                    };
                    if !joined {
                        if let Some(old) = self.pending.replace(e) {
                            return Output::Event(old);
                        }
                    }
                }
                Output::Event(e) => match self.pending.take() {
                    Some(p) => {
                        self.queue.push_back(e);
                        return Output::Event(p);
                    }
                    None => return Output::Event(e),
                },
                o => return o,
            }
        }
    }
}

fn join_bytes(a: &mut Bytes, b: &Bytes) {
    let mut v = a.to_vec();
    v.extend_from_slice(b);
    *a = Bytes::from(v);
}

fn server_is_body(e: &ServerEvent) -> bool {
    matches!(e, ServerEvent::Body { .. })
}

fn server_join(a: &mut ServerEvent, b: &ServerEvent) -> bool {
    match (a, b) {
        (ServerEvent::Body { id, data }, ServerEvent::Body { id: id2, data: d2 }) if id == id2 => {
            join_bytes(data, d2);
            true
        }
        _ => false,
    }
}

fn client_is_body(e: &ClientEvent) -> bool {
    matches!(e, ClientEvent::Body { .. })
}

fn client_join(a: &mut ClientEvent, b: &ClientEvent) -> bool {
    match (a, b) {
        (ClientEvent::Body { id, data }, ClientEvent::Body { id: id2, data: d2 }) if id == id2 => {
            join_bytes(data, d2);
            true
        }
        _ => false,
    }
}

fn run_requests(v: &Vector) {
    let make = || {
        Merge::new(
            Server::new(ServerConfig {
                max_pipelined: 64,
                ..ServerConfig::default()
            }),
            server_is_body,
            server_join,
        )
    };
    for case in v.cases().expect("messages") {
        let steps = [Step::Accept(C), Step::Data(C, case.input.clone())];
        let trace = assert_chunking(make, &steps);
        let canon = server_canon(&trace.events);
        // Whether something is left incomplete, from a whole run.
        let mut sim = Sim::new(make());
        sim.accept(C);
        sim.data(C, &case.input);
        let pending = sim.machine.inner.buffered(C) > 0 || canon.current.is_some();
        check(v, case.line, &canon, pending, &case.expect, &case.outcome);
    }
}

/// A client that sends `n` requests of `method` as soon as its connection
/// opens (pipelined).
struct Asker {
    client: Client,
    method: String,
    n: usize,
}

impl Machine for Asker {
    type Event = ClientEvent;
    type Error = Error;
    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Error> {
        let opened = matches!(input, Input::Opened { .. });
        let r = self.client.handle_input(now, input)?;
        if opened {
            for _ in 0..self.n {
                self.client
                    .request(C, &self.method, "/", &[("Host", "v")], BodyKind::Empty)?;
            }
        }
        Ok(r)
    }
    fn handle_timeout(&mut self, now: Now) {
        self.client.handle_timeout(now)
    }
    fn poll_output(&mut self) -> Output<ClientEvent> {
        self.client.poll_output()
    }
}

fn client_canon(events: &[ClientEvent]) -> Canon {
    let mut c = Canon::default();
    for e in events {
        let line = |h: &twill_http::ResponseHead| {
            format!("{} {} {}", h.version().as_str(), h.status(), h.reason())
        };
        match e {
            ClientEvent::Informational { head, .. } => {
                c.start(line(head), head.headers());
                c.end(&Headers::default());
            }
            ClientEvent::Response { head, .. } => c.start(line(head), head.headers()),
            ClientEvent::Body { data, .. } => c.body(data),
            ClientEvent::BodyEnd { trailers, .. } => c.end(trailers),
            ClientEvent::Violation { error, .. } => c.error = Some(error.kind()),
            _ => {}
        }
    }
    c
}

fn run_responses(v: &Vector) {
    let method = v.header("method").unwrap_or("GET").to_string();
    let eof = v.header("eof") == Some("yes");
    for case in v.cases().expect("messages") {
        let n = case.expect.len() + 1;
        let make = || {
            Merge::new(
                Asker {
                    client: Client::new(ClientConfig {
                        pipelining: true,
                        ..ClientConfig::default()
                    }),
                    method: method.clone(),
                    n,
                },
                client_is_body,
                client_join,
            )
        };
        let mut steps = vec![Step::Opened(C), Step::Data(C, case.input.clone())];
        if eof {
            steps.push(Step::Eof(C));
        }
        let trace = assert_chunking(make, &steps);
        let canon = client_canon(&trace.events);
        let mut sim = Sim::new(make());
        sim.opened(C);
        sim.data(C, &case.input);
        let pending = !eof && (sim.machine.inner.client.buffered(C) > 0 || canon.current.is_some());
        check(v, case.line, &canon, pending, &case.expect, &case.outcome);
    }
}

#[test]
fn every_vector() {
    let mut ran = 0;
    for v in vectors() {
        match v.header("codec") {
            Some("request") => run_requests(&v),
            Some("response") => run_responses(&v),
            other => panic!("{}: unknown codec {other:?}", v.name),
        }
        ran += v.cases().map_or(0, <[_]>::len);
    }
    eprintln!("{ran} http vector cases");
}
