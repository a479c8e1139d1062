//! The handler API under a minimal host: `App` dispatches events to a
//! `Handler`, sends `100 Continue` for a handler that did not answer at
//! once, and blocking work comes back through `on_done`; `handler_fn`
//! buffers the body and answers with the function's response.

use std::collections::VecDeque;

use bytes::Bytes;
use twill_core::service::{Host, Work};
use twill_core::testing::Sim;
use twill_core::{ConnId, Cx, FileId, Instant, Service};
use twill_http::app::{handler_fn, Ctx, Handler, Response};
use twill_http::{App, Request, RequestId, Server, ServerEvent};

/// Runs blocking work later, when asked, like a pool would.
struct TestHost<D> {
    work: VecDeque<Work<D>>,
}

impl<D> Default for TestHost<D> {
    fn default() -> Self {
        TestHost {
            work: VecDeque::new(),
        }
    }
}

impl<D> Host<D> for TestHost<D> {
    fn spawn_blocking(&mut self, work: Work<D>) {
        self.work.push_back(work);
    }
    fn call_at(&mut self, _deadline: Instant, _token: u64) {}
    fn cancel_timer(&mut self, _token: u64) {}
    fn add_file(&mut self, _file: std::sync::Arc<std::fs::File>) -> FileId {
        FileId(0)
    }
    fn release_file(&mut self, _id: FileId) {}
    fn stop(&mut self) {}
}

const C: ConnId = ConnId(1);

/// Feeds `bytes`, hands every new event to the service, runs the pool.
fn run<S: Service<Server>>(
    sim: &mut Sim<Server>,
    app: &mut S,
    host: &mut TestHost<S::Done>,
    bytes: &[u8],
) {
    let mut seen = sim.events.len();
    sim.data(C, bytes);
    loop {
        while seen < sim.events.len() {
            let e = sim.events[seen].clone();
            seen += 1;
            let now = sim.clock.now();
            let mut cx = Cx::new(&mut sim.machine, now, host);
            app.on_event(&mut cx, e);
            sim.drain();
        }
        let Some(w) = host.work.pop_front() else {
            break;
        };
        let done = w();
        let now = sim.clock.now();
        let mut cx = Cx::new(&mut sim.machine, now, host);
        app.on_done(&mut cx, done);
        sim.drain();
    }
}

struct Slow;

impl Handler for Slow {
    type Done = (RequestId, String);
    fn on_request(&mut self, cx: &mut Ctx<'_, Self::Done>, req: Request) {
        let (id, t) = (req.id, req.head.target().to_string());
        cx.spawn_blocking(move || (id, t.to_uppercase()));
    }
    fn on_done(&mut self, cx: &mut Ctx<'_, Self::Done>, (id, body): Self::Done) {
        cx.machine()
            .respond_full(id, 200, &[], Bytes::from(body))
            .unwrap();
    }
}

#[test]
fn blocking_work_answers_in_order() {
    let mut sim = Sim::new(Server::default());
    sim.accept(C);
    let mut app = App::new(Slow);
    let mut host = TestHost::default();
    run(
        &mut sim,
        &mut app,
        &mut host,
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    let t = sim.sent_text(C);
    let (a, b) = (t.find("\r\n\r\n/A").unwrap(), t.find("\r\n\r\n/B").unwrap());
    assert!(a < b, "{t}");
}

#[test]
fn continue_is_sent_for_a_handler_that_waits_for_the_body() {
    let mut sim = Sim::new(Server::default());
    sim.accept(C);
    let mut app = App::new(handler_fn(|req: &Request, body: Bytes| {
        Response::text(
            200,
            format!("{} got {} bytes", req.head.target(), body.len()),
        )
    }));
    let mut host = TestHost::default();
    run(
        &mut sim,
        &mut app,
        &mut host,
        b"POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    assert_eq!(sim.sent_text(C), "HTTP/1.1 100 Continue\r\n\r\n");
    run(&mut sim, &mut app, &mut host, b"hello");
    let t = sim.sent_text(C);
    assert!(t.ends_with("\r\n\r\n/up got 5 bytes"), "{t}");
    assert!(
        t.contains("Content-Type: text/plain; charset=utf-8\r\n"),
        "{t}"
    );
    assert!(sim
        .events
        .iter()
        .any(|e| matches!(e, ServerEvent::ResponseDone { .. })));
}

#[test]
fn bodyless_requests_still_end_in_the_handler() {
    // `handler_fn` answers from `on_body_end`: requests without a body
    // (which the machine ends with their head) must reach it too.
    let mut sim = Sim::new(Server::default());
    sim.accept(C);
    let mut app = App::new(handler_fn(|req: &Request, body: Bytes| {
        Response::text(200, format!("{}:{}", req.head.target(), body.len()))
    }));
    let mut host = TestHost::default();
    run(
        &mut sim,
        &mut app,
        &mut host,
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\nPOST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok",
    );
    let t = sim.sent_text(C);
    let (a, b, c) = (
        t.find("\r\n\r\n/a:0").unwrap(),
        t.find("\r\n\r\n/b:0").unwrap(),
        t.find("\r\n\r\n/c:2").unwrap(),
    );
    assert!(a < b && b < c, "{t}");
}
