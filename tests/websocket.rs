//! WebSocket against peers nobody here wrote: Python's `websockets`
//! (PyPI, installed by scripts/test-all.sh) as client of `twill web
//! --websocket-echo` on every driver, and as server for `twill ws`.

mod common;

use common::{args, run_python, DRIVERS};
use twill::ws::echo::start_web_echo;

#[test]
fn websockets_client_against_twill_web_echo_on_every_driver() {
    let dir = std::env::temp_dir().join(format!("twill-ws-root-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), b"hello\n").unwrap();
    for driver in DRIVERS {
        let running = start_web_echo(args(driver, &["tcp:0:interface=127.0.0.1"]), &dir, "/ws")
            .expect("start twill web --websocket-echo");
        let port = running.local_addrs()[0].socket_addr().expect("tcp").port();
        let out = run_python("ws_clients.py", &[&port.to_string(), "/ws"]);
        assert_eq!(out.trim(), "ok", "{driver:?}");
        // The files are still served beside the endpoint.
        let got = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .arg(format!("http://127.0.0.1:{port}/hello.txt"))
            .output()
            .expect("curl");
        assert_eq!(got.stdout, b"hello\n", "{driver:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
