//! A hello-world HTTP server, for `benches/http_hello.sh` to load with
//! `wrk`: hyper 1.x on a current-thread runtime (the peer), or twill-http's
//! demo `Hello` handler on the tokio or mio driver.
//!
//! Usage: `http_hello hyper|twill-tokio|twill-mio PORT` (serves until
//! killed).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use twill_driver::ServeOptions;
use twill_http::app::{demo::Hello, App};
use twill_http::server::{Server, ServerConfig};

fn hyper_server(port: u16) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = service_fn(|_req: Request<hyper::body::Incoming>| async {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("Content-Type", "text/plain; charset=utf-8")
                            .body(Full::new(Bytes::from_static(b"hello, world\n")))
                            .unwrap(),
                    )
                });
                let _ = http1::Builder::new()
                    .pipeline_flush(true)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_default();
    let port: u16 = args
        .next()
        .and_then(|p| p.parse().ok())
        .expect("usage: http_hello SERVER PORT");
    let opts = ServeOptions::factory(vec![format!("tcp:{port}:interface=127.0.0.1")
        .parse()
        .unwrap()]);
    let make = || (Server::new(ServerConfig::default()), App::new(Hello::new()));
    match which.as_str() {
        "hyper" => hyper_server(port),
        "twill-tokio" => twill_tokio::spawn(opts, make).unwrap().wait().unwrap(),
        "twill-mio" => twill_mio::spawn(opts, make).unwrap().wait().unwrap(),
        other => panic!("unknown server {other:?}"),
    }
}
