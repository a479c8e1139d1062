//! The application interface is written once and hosted by every driver:
//! one service over the line-framing machine answers each line after
//! running "blocking work" through `spawn_blocking`, checks that the work
//! ran off the event thread and that its result came back on it, and uses
//! a service timer. A line over the limit closes only its own connection.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::thread::ThreadId;
use std::time::Duration;

use bytes::Bytes;
use common::{args, DRIVERS};
use twill::basic::codec::Lines;
use twill::basic::framed::{Framed, FramedEvent};
use twill::cli::{start, Driver};
use twill_core::{ConnId, Cx, Service};
use twill_driver::Mode;

type M = Framed<Lines>;

/// Upper-cases each line on the pool; says "tick" after a timer.
#[derive(Default)]
struct Shout;

struct Done {
    conn: ConnId,
    line: Bytes,
    worker: ThreadId,
    asked_on: ThreadId,
}

impl Service<M> for Shout {
    type Done = Done;

    fn on_event(&mut self, cx: &mut Cx<'_, M, Done>, event: FramedEvent) {
        if let FramedEvent::Frame { conn, frame } = event {
            if &frame[..] == b"timer" {
                let at = cx.now().mono + Duration::from_millis(50);
                cx.call_at(at, conn.0);
                return;
            }
            let asked_on = std::thread::current().id();
            cx.spawn_blocking(move || Done {
                conn,
                line: Bytes::from(frame.to_ascii_uppercase()),
                worker: std::thread::current().id(),
                asked_on,
            });
        }
    }

    fn on_done(&mut self, cx: &mut Cx<'_, M, Done>, done: Done) {
        let here = std::thread::current().id();
        // The work ran on neither the thread that asked nor the one that
        // got the result back.
        let off = if done.worker != done.asked_on && done.worker != here {
            "off-thread"
        } else {
            "ON-THE-EVENT-THREAD"
        };
        // The std and mio drivers own a machine on one thread; tokio owns
        // it in a task, which may move between worker threads.
        let same = if here == done.asked_on {
            "same"
        } else {
            "moved"
        };
        let reply = format!("{} {off} {same}", String::from_utf8_lossy(&done.line));
        let _ = cx.machine().send(done.conn, reply.as_bytes());
    }

    fn on_timer(&mut self, cx: &mut Cx<'_, M, Done>, token: u64) {
        let _ = cx.machine().send(ConnId(token), b"tick");
    }
}

fn assert_reply(line: &str, text: &str, driver: Driver) {
    if driver == Driver::Tokio {
        assert!(
            line.starts_with(&format!("{text} off-thread ")),
            "{driver:?}: {line:?}"
        );
    } else {
        assert_eq!(line, format!("{text} off-thread same\n"), "{driver:?}");
    }
}

#[test]
fn one_service_every_driver() {
    for driver in DRIVERS {
        let server = start(
            args(driver, &["tcp:0:interface=127.0.0.1"]),
            "",
            Mode::Factory,
            || (Framed::new(Lines::new().max_length(64)), Shout),
        )
        .expect("bind");
        let addr = server.addr();
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        w.write_all(b"hello\ntimer\n").unwrap();
        r.read_line(&mut line).unwrap();
        assert_reply(&line, "HELLO", driver);
        line.clear();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "tick\n", "{driver:?}");

        // A second client breaks the line limit: it is closed, the first
        // carries on.
        let mut bad = TcpStream::connect(addr).unwrap();
        bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        bad.write_all(&[b'x'; 200]).unwrap();
        let mut rest = Vec::new();
        let _ = bad.read_to_end(&mut rest);
        w.write_all(b"still here\n").unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        assert_reply(&line, "STILL HERE", driver);
        server.stop();
        server.wait().unwrap();
    }
}
