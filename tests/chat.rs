//! A hub machine — the chat, where every line from one client goes to all
//! the others — written once and run on each driver with 50 clients, and
//! in memory under the virtual clock.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{args, DRIVERS};
use twill::basic::chat::Chat;
use twill::cli::{start, LogEvents};
use twill_core::testing::Sim;
use twill_core::ConnId;
use twill_driver::Mode;

const CLIENTS: usize = 50;

struct Client {
    out: TcpStream,
    lines: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: std::net::SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client {
            out: s.try_clone().unwrap(),
            lines: BufReader::new(s),
        }
    }

    fn say(&mut self, line: &str) {
        self.out.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    fn hear(&mut self) -> String {
        let mut l = String::new();
        let n = self
            .lines
            .read_line(&mut l)
            .expect("a line within the timeout");
        assert!(n > 0, "connection closed");
        l.trim_end().to_string()
    }
}

#[test]
fn chat_hub_every_driver() {
    for driver in DRIVERS {
        let server = start(
            args(driver, &["tcp:0:interface=127.0.0.1"]),
            "",
            Mode::Hub,
            || (Chat::new(), LogEvents),
        )
        .expect("bind");
        let addr = server.addr();
        let mut clients: Vec<Client> = Vec::new();
        for k in 0..CLIENTS {
            let mut c = Client::connect(addr);
            if k > 0 {
                // Once the first client hears k's greeting, the hub has k.
                c.say(&format!("join {k}"));
                assert_eq!(clients[0].hear(), format!("join {k}"), "{driver:?}");
            }
            clients.push(c);
        }
        for (i, c) in clients.iter_mut().enumerate() {
            c.say(&format!("message from {i}"));
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let mut heard = Vec::new();
            while heard.len() < CLIENTS - 1 {
                let l = c.hear();
                if l.starts_with("message from ") {
                    heard.push(l);
                } else {
                    assert!(l.starts_with("join "), "{driver:?}: unexpected {l:?}");
                }
            }
            heard.sort();
            let mut want: Vec<String> = (0..CLIENTS)
                .filter(|j| *j != i)
                .map(|j| format!("message from {j}"))
                .collect();
            want.sort();
            assert_eq!(heard, want, "{driver:?}: client {i}");
        }
        server.stop();
        server.wait().unwrap();
    }
}

#[test]
fn chat_hub_in_memory() {
    let mut sim = Sim::new(Chat::new());
    let conns: Vec<ConnId> = (1..=CLIENTS as u64).map(ConnId).collect();
    for c in &conns {
        sim.accept(*c);
    }
    for (i, c) in conns.iter().enumerate() {
        sim.data(*c, format!("line {i}\n").as_bytes());
    }
    sim.advance(Duration::from_secs(60));
    for (i, c) in conns.iter().enumerate() {
        let text = sim.sent_text(*c);
        let mut got: Vec<&str> = text.lines().collect();
        got.sort();
        let mut want: Vec<String> = (0..CLIENTS)
            .filter(|j| *j != i)
            .map(|j| format!("line {j}"))
            .collect();
        want.sort();
        assert_eq!(got, want, "client {i}");
    }
}
