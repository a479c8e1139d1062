//! Handlers written once, hosted by every driver.
//!
//! A [`Handler`] reacts to requests (head, then streamed body) and answers
//! through the [`Server`] commands it reaches with `cx.machine()`; blocking
//! work (file reads, password hashes) goes through `cx.spawn_blocking` and
//! comes back in [`Handler::on_done`] on the machine's thread. [`App`]
//! adapts a handler into a [`twill_core::Service`] over [`Server`], so
//!
//! ```ignore
//! twill::cli::start(args, "tcp:8080", Mode::Factory, || {
//!     (Server::new(ServerConfig::default()), App::new(MyHandler::default()))
//! })
//! ```
//!
//! serves it on the std, mio or tokio driver unchanged.
//!
//! Blocking work leaves the event thread and comes back as a value:
//!
//! ```no_run
//! use bytes::Bytes;
//! use twill_http::app::{Ctx, Handler};
//! use twill_http::{Request, RequestId};
//!
//! /// Serves files from the current directory (an example: no checks).
//! struct Files;
//!
//! impl Handler for Files {
//!     type Done = (RequestId, std::io::Result<Vec<u8>>);
//!
//!     fn on_request(&mut self, cx: &mut Ctx<'_, Self::Done>, req: Request) {
//!         let id = req.id;
//!         let path = format!(".{}", req.head.target());
//!         // Runs on the driver's pool; the result comes to `on_done`.
//!         cx.spawn_blocking(move || (id, std::fs::read(path)));
//!     }
//!
//!     fn on_done(&mut self, cx: &mut Ctx<'_, Self::Done>, (id, data): Self::Done) {
//!         // The request may have been aborted meanwhile: then this is an
//!         // `Err` to ignore.
//!         let _ = match data {
//!             Ok(d) => cx.machine().respond_full(id, 200, &[], Bytes::from(d)),
//!             Err(_) => cx.machine().respond_full(id, 404, &[], Bytes::new()),
//!         };
//!     }
//! }
//! ```
//!
//! For handlers that want the whole request body at once there is
//! [`handler_fn`]; [`demo`] holds the hello-world and echo handlers the
//! examples and tests use.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use twill_core::{ConnId, Cx, Service};

use crate::codec::head::Headers;
use crate::server::{Request, RequestId, Server, ServerEvent};

/// The context a handler gets: the server machine (`cx.machine()`), the
/// time, `spawn_blocking`, timers.
pub type Ctx<'a, D> = Cx<'a, Server, D>;

/// An HTTP application: request in, response out, bodies streamed both
/// ways. Every method but [`on_request`](Self::on_request) has a default
/// that does nothing.
///
/// A request's events come in order: `on_request`, any number of
/// `on_body`, `on_body_end` (always, also without a body). The response
/// may start at any point (`cx.machine().respond(…)`), before the body has
/// arrived or after. A handler that has not responded by the time
/// `on_request` returns to a request that sent `Expect: 100-continue` gets
/// `100 Continue` sent for it (it wants the body).
pub trait Handler {
    /// Results of blocking work started with `cx.spawn_blocking`.
    type Done: Send + 'static;

    /// A request head arrived.
    fn on_request(&mut self, cx: &mut Ctx<'_, Self::Done>, req: Request);

    /// A piece of a request body.
    fn on_body(&mut self, cx: &mut Ctx<'_, Self::Done>, id: RequestId, data: Bytes) {
        let _ = (cx, id, data);
    }

    /// The request body is complete.
    fn on_body_end(&mut self, cx: &mut Ctx<'_, Self::Done>, id: RequestId, trailers: Headers) {
        let _ = (cx, id, trailers);
    }

    /// The response to `id` may take more body (see
    /// [`Server::is_writable`]).
    fn on_writable(&mut self, cx: &mut Ctx<'_, Self::Done>, id: RequestId) {
        let _ = (cx, id);
    }

    /// The request will get no response any more (the connection broke);
    /// drop its state.
    fn on_aborted(&mut self, cx: &mut Ctx<'_, Self::Done>, id: RequestId) {
        let _ = (cx, id);
    }

    /// Blocking work finished.
    fn on_done(&mut self, cx: &mut Ctx<'_, Self::Done>, done: Self::Done) {
        let _ = (cx, done);
    }

    /// A timer set with `cx.call_at` fired.
    fn on_timer(&mut self, cx: &mut Ctx<'_, Self::Done>, token: u64) {
        let _ = (cx, token);
    }

    /// Every other event (connections, violations, upgrades, closes), for
    /// logging or for taking over an upgraded connection.
    fn on_other(&mut self, cx: &mut Ctx<'_, Self::Done>, event: ServerEvent) {
        let _ = (cx, event);
    }
}

/// A [`Handler`] as a [`Service`] over [`Server`].
#[derive(Clone, Debug, Default)]
pub struct App<H> {
    handler: H,
}

impl<H: Handler> App<H> {
    /// Wraps a handler.
    pub fn new(handler: H) -> Self {
        App { handler }
    }

    /// The handler.
    pub fn handler(&mut self) -> &mut H {
        &mut self.handler
    }
}

impl<H: Handler> Service<Server> for App<H> {
    type Done = H::Done;

    fn on_event(&mut self, cx: &mut Ctx<'_, H::Done>, event: ServerEvent) {
        match event {
            ServerEvent::Request(req) => {
                let (id, expect, bodyless) = (req.id, req.expect_continue, req.body.is_empty());
                self.handler.on_request(cx, req);
                if bodyless {
                    // The machine sends no BodyEnd for a request without a
                    // body; handlers get theirs all the same.
                    self.handler.on_body_end(cx, id, Headers::default());
                }
                if expect && !cx.machine().has_responded(id) {
                    let _ = cx.machine().send_continue(id);
                }
            }
            ServerEvent::Body { id, data } => self.handler.on_body(cx, id, data),
            ServerEvent::BodyEnd { id, trailers } => self.handler.on_body_end(cx, id, trailers),
            ServerEvent::Writable { id } => self.handler.on_writable(cx, id),
            ServerEvent::Aborted { id } => self.handler.on_aborted(cx, id),
            other => self.handler.on_other(cx, other),
        }
    }

    fn on_done(&mut self, cx: &mut Ctx<'_, H::Done>, done: H::Done) {
        self.handler.on_done(cx, done);
    }

    fn on_timer(&mut self, cx: &mut Ctx<'_, H::Done>, token: u64) {
        self.handler.on_timer(cx, token);
    }
}

/// A whole response, for [`handler_fn`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code (200–999).
    pub status: u16,
    /// Fields (no framing fields: the length is the body's).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// A response with a `text/plain; charset=utf-8` body.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            headers: alloc::vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: Bytes::from(body.into().into_bytes()),
        }
    }

    /// Adds a field.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A handler from a function of the request and its whole body (buffered
/// up to the server's `max_body`).
pub struct FnHandler<F> {
    f: F,
    pending: BTreeMap<RequestId, (Request, BytesMut)>,
}

/// Makes a [`Handler`] from `f(request, body) -> Response`.
pub fn handler_fn<F>(f: F) -> FnHandler<F>
where
    F: FnMut(&Request, Bytes) -> Response,
{
    FnHandler {
        f,
        pending: BTreeMap::new(),
    }
}

impl<F> Handler for FnHandler<F>
where
    F: FnMut(&Request, Bytes) -> Response,
{
    type Done = ();

    fn on_request(&mut self, _cx: &mut Ctx<'_, ()>, req: Request) {
        self.pending.insert(req.id, (req, BytesMut::new()));
    }

    fn on_body(&mut self, _cx: &mut Ctx<'_, ()>, id: RequestId, data: Bytes) {
        if let Some((_, body)) = self.pending.get_mut(&id) {
            body.extend_from_slice(&data);
        }
    }

    fn on_body_end(&mut self, cx: &mut Ctx<'_, ()>, id: RequestId, _trailers: Headers) {
        let Some((req, body)) = self.pending.remove(&id) else {
            return;
        };
        let resp = (self.f)(&req, body.freeze());
        let headers: Vec<(&str, &str)> = resp
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        if cx
            .machine()
            .respond_full(id, resp.status, &headers, resp.body)
            .is_err()
        {
            let _ = cx.machine().respond_full(
                id,
                500,
                &[],
                Bytes::from_static(b"Internal Server Error\n"),
            );
        }
    }

    fn on_aborted(&mut self, _cx: &mut Ctx<'_, ()>, id: RequestId) {
        self.pending.remove(&id);
    }

    fn on_other(&mut self, _cx: &mut Ctx<'_, ()>, event: ServerEvent) {
        if let ServerEvent::Closed { conn } = event {
            self.pending.retain(|id, _| id.conn() != conn);
        }
    }
}

pub mod demo {
    //! The handlers of the examples and tests: hello world, and an echo of
    //! the request body that streams it back as it arrives.

    use super::*;
    use crate::codec::framing::BodyKind;

    /// `GET /…` → `hello, world\n`; `POST /echo` (or any request with a
    /// body to `/echo`) → the body back, streamed: with the same
    /// Content-Length when the request had one, chunked otherwise.
    /// Requests to other paths with a body get 404 after the body is read.
    #[derive(Clone, Debug, Default)]
    pub struct Hello {
        echoing: BTreeMap<RequestId, ()>,
    }

    impl Hello {
        /// The handler.
        pub fn new() -> Self {
            Hello::default()
        }
    }

    impl Handler for Hello {
        type Done = ();

        fn on_request(&mut self, cx: &mut Ctx<'_, ()>, req: Request) {
            let path = req.head.target().split('?').next().unwrap_or("");
            let s = cx.machine();
            if path == "/echo" {
                let kind = match req.body {
                    BodyKind::Length(n) => BodyKind::Length(n),
                    BodyKind::Empty => BodyKind::Empty,
                    _ => BodyKind::Chunked,
                };
                let _ = s.respond(
                    req.id,
                    200,
                    &[("Content-Type", "application/octet-stream")],
                    kind,
                );
                if !kind.is_empty() {
                    self.echoing.insert(req.id, ());
                }
            } else if path == "/" || path == "/hello" {
                let _ = s.respond_full(
                    req.id,
                    200,
                    &[("Content-Type", "text/plain; charset=utf-8")],
                    Bytes::from_static(b"hello, world\n"),
                );
            } else {
                let _ = s.respond_full(
                    req.id,
                    404,
                    &[("Content-Type", "text/plain; charset=utf-8")],
                    Bytes::from_static(b"not found\n"),
                );
            }
        }

        fn on_body(&mut self, cx: &mut Ctx<'_, ()>, id: RequestId, data: Bytes) {
            if self.echoing.contains_key(&id) {
                let _ = cx.machine().send_body(id, data);
            }
        }

        fn on_body_end(&mut self, cx: &mut Ctx<'_, ()>, id: RequestId, _trailers: Headers) {
            if self.echoing.remove(&id).is_some() {
                let _ = cx.machine().finish(id, &[]);
            }
        }

        fn on_aborted(&mut self, _cx: &mut Ctx<'_, ()>, id: RequestId) {
            self.echoing.remove(&id);
        }

        fn on_other(&mut self, _cx: &mut Ctx<'_, ()>, event: ServerEvent) {
            if let ServerEvent::Closed { conn } = event {
                self.echoing.retain(|id, _| id.conn() != conn);
            }
        }
    }

    /// Forgets the requests of `conn` in a map keyed by request.
    pub fn forget_conn<V>(map: &mut BTreeMap<RequestId, V>, conn: ConnId) {
        map.retain(|id, _| id.conn() != conn);
    }
}
