//! What one pipelined hello-world request costs in twill's own code, with
//! no socket and no kernel: the driver engine (the part every driver
//! shares) hosting `Server` + `App<Hello>`, fed the batch `wrk` sends with
//! `benches/pipeline.lua` (16 `GET /` in one read), every write reported
//! sent at once.
//!
//! Usage: `http_cost [BATCHES] [DEPTH]` (default 200,000 batches of 16).
//! `DEPTH` 1 is the path of a client that does not pipeline: a read, a
//! reply and its `sent` per request. Prints ns per request.
//! Under `valgrind --tool=callgrind` it gives a count of instructions per
//! request that does not depend on what else the machine is running —
//! the figure to watch while changing the request path.

use std::time::Instant as StdInstant;

use twill_core::{Addr, Instant, Now, UnixTime};
use twill_driver::{Action, Engine, EngineConfig, Mode};
use twill_http::app::{demo::Hello, App};
use twill_http::{Server, ServerConfig};

fn main() {
    let batches: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("BATCHES is a number"))
        .unwrap_or(200_000);
    let depth: usize = std::env::args()
        .nth(2)
        .map(|a| a.parse().expect("DEPTH is a number"))
        .unwrap_or(16);
    let one = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n";
    let batch: Vec<u8> = one.repeat(depth);
    let mut e = Engine::new(Mode::Factory, EngineConfig::default(), || {
        (Server::new(ServerConfig::default()), App::new(Hello::new()))
    });
    let listener = e.new_key();
    e.add_listener(listener);
    let key = e.new_key();
    let mut ms = 0u64;
    let now = |ms: u64| {
        Now::new(
            Instant::from_nanos(ms * 1_000_000),
            UnixTime::from_secs(1_700_000_000 + (ms / 1000) as i64),
        )
    };
    e.accept(listener, key, Addr::Unknown, Addr::Unknown, now(ms))
        .expect("one connection fits");
    let mut responses = 0usize;
    let start = StdInstant::now();
    for i in 0..batches {
        if i % 64 == 0 {
            // The clock moves as it would: a new Date now and then.
            ms += 1;
        }
        e.data(key, &batch, now(ms));
        let mut written = 0usize;
        while let Some(a) = e.poll_action() {
            if let Action::Write { chunk, .. } = a {
                written += chunk.len() as usize;
            }
        }
        responses += written;
        e.sent(key, written, now(ms));
        while e.poll_action().is_some() {}
        if e.next_deadline().is_some_and(|d| d <= now(ms).mono) {
            e.timeout(now(ms));
            while e.poll_action().is_some() {}
        }
    }
    let took = start.elapsed();
    let requests = batches * depth;
    // Every response to `GET /` is the same size: check they all came.
    assert!(
        responses >= requests * 100,
        "only {responses} bytes of responses for {requests} requests"
    );
    println!(
        "{requests} requests, {} bytes of responses, {:.1} ns per request",
        responses,
        took.as_nanos() as f64 / requests as f64
    );
}
