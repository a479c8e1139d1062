//! HTTP hello world and a streaming echo of request bodies, served by
//! the blocking std driver (a thread per connection).
//!
//! ```text
//! cargo run --example hello_std [ENDPOINT]      # default tcp:8080
//! curl http://localhost:8080/                  # hello, world
//! curl --data-binary @somefile http://localhost:8080/echo
//! ```
//!
//! The handler (`twill_http::app::demo::Hello`) is written once against
//! `twill_http::Handler`; `App` makes it a service every driver hosts, so
//! this file differs from its std/mio/tokio siblings only in the `spawn`
//! it calls.

use twill_driver::ServeOptions;
use twill_http::app::demo::Hello;
use twill_http::{App, Server, ServerConfig};

fn main() {
    let endpoint = std::env::args().nth(1).unwrap_or_else(|| "tcp:8080".into());
    let endpoint = match endpoint.parse() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("hello_std: bad endpoint {endpoint:?}: {e}");
            std::process::exit(2);
        }
    };
    let opts = ServeOptions::factory(vec![endpoint]);
    let running = match twill_std::spawn(opts, || {
        (Server::new(ServerConfig::default()), App::new(Hello::new()))
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hello_std: {e}");
            std::process::exit(2);
        }
    };
    for a in running.local_addrs() {
        println!("listening on {a}");
    }
    if let Err(e) = running.wait() {
        eprintln!("hello_std: {e}");
        std::process::exit(1);
    }
}
