//! `twill echo` on every driver × {tcp, unix}: 200 concurrent clients, each
//! sending 1 MiB in random-sized writes (down to one byte) and half-closing,
//! get their bytes back exactly — with Rust clients and with Python's
//! asyncio as the client nobody here wrote.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::thread;

use common::{args, run_python, unix_path, Rng};
use twill::basic::echo::Echo;
use twill::cli::{start, Driver, LogEvents};
use twill_driver::Mode;

const CLIENTS: usize = 200;
const BYTES: usize = 1 << 20;

trait Stream: Read + Write + Send + 'static {
    fn try_clone_box(&self) -> Box<dyn Stream>;
    fn half_close(&self);
}

impl Stream for TcpStream {
    fn try_clone_box(&self) -> Box<dyn Stream> {
        Box::new(self.try_clone().unwrap())
    }
    fn half_close(&self) {
        self.shutdown(Shutdown::Write).unwrap();
    }
}

impl Stream for UnixStream {
    fn try_clone_box(&self) -> Box<dyn Stream> {
        Box::new(self.try_clone().unwrap())
    }
    fn half_close(&self) {
        self.shutdown(Shutdown::Write).unwrap();
    }
}

fn rust_clients(connect: impl Fn() -> Box<dyn Stream> + Sync) {
    thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let mut stream = connect();
                s.spawn(move || {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
                    let data = rng.bytes(BYTES);
                    let mut reader = stream.try_clone_box();
                    let receiver = thread::spawn(move || {
                        let mut got = Vec::with_capacity(BYTES);
                        reader.read_to_end(&mut got).unwrap();
                        got
                    });
                    let mut pos = 0;
                    while pos < data.len() {
                        let n = if rng.next() % 2 == 0 {
                            rng.size(64)
                        } else {
                            rng.size(65536)
                        };
                        let end = (pos + n).min(data.len());
                        stream.write_all(&data[pos..end]).unwrap();
                        pos = end;
                    }
                    stream.half_close();
                    let got = receiver.join().unwrap();
                    assert_eq!(got.len(), data.len(), "client {i}: length");
                    assert!(got == data, "client {i}: bytes differ");
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

fn echo_tcp(driver: Driver) {
    let server = start(
        args(driver, &["tcp:0:interface=127.0.0.1"]),
        "",
        Mode::Factory,
        || (Echo::new(), LogEvents),
    )
    .expect("bind");
    let addr = server.addr();
    rust_clients(|| Box::new(TcpStream::connect(addr).unwrap()));
    run_python(
        "echo_clients.py",
        &[
            "--tcp",
            &addr.to_string(),
            "--clients",
            &CLIENTS.to_string(),
            "--bytes",
            &BYTES.to_string(),
        ],
    );
    server.stop();
    server.wait().unwrap();
}

fn echo_unix(driver: Driver) {
    let path = unix_path("echo");
    let ep = format!("unix:{path}");
    let server = start(args(driver, &[&ep]), "", Mode::Factory, || {
        (Echo::new(), LogEvents)
    })
    .expect("bind");
    rust_clients(|| Box::new(UnixStream::connect(&path).unwrap()));
    run_python(
        "echo_clients.py",
        &[
            "--unix",
            &path,
            "--clients",
            &CLIENTS.to_string(),
            "--bytes",
            &BYTES.to_string(),
        ],
    );
    server.stop();
    server.wait().unwrap();
    let _ = std::fs::remove_file(&path);
}

#[test]
fn echo_tcp_std() {
    echo_tcp(Driver::Std);
}

#[test]
fn echo_tcp_mio() {
    echo_tcp(Driver::Mio);
}

#[test]
fn echo_tcp_tokio() {
    echo_tcp(Driver::Tokio);
}

#[test]
fn echo_unix_std() {
    echo_unix(Driver::Std);
}

#[test]
fn echo_unix_mio() {
    echo_unix(Driver::Mio);
}

#[test]
fn echo_unix_tokio() {
    echo_unix(Driver::Tokio);
}
