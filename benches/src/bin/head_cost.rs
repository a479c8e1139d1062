//! Head decoding alone, for instruction counts: `valgrind --tool=callgrind
//! benches/target/release/head_cost short|long|raw-short|raw-long N` decodes
//! the head N times the way `head_ratio` does, so the count per head of
//! twill and of raw httparse can be compared without timer noise.

use std::hint::black_box;

use bytes::BytesMut;
use twill_http::codec::head::{decode_request, HeadLimits, HeadScanner};

const REQ_SHORT: &[u8] = b"GET / HTTP/1.0\r\nHost: example.com\r\nCookie: session=60; user_id=1\r\n\r\n";
const REQ: &[u8] = b"GET /wp-content/uploads/2010/03/hello-kitty-darth-vader-pink.jpg HTTP/1.1\r\nHost: www.kittyhell.com\r\nUser-Agent: Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10.6; ja-JP-mac; rv:1.9.2.3) Gecko/20100401 Firefox/3.6.3 Pathtraq/0.9\r\nAccept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: ja,en-us;q=0.7,en;q=0.3\r\nAccept-Encoding: gzip,deflate\r\nAccept-Charset: Shift_JIS,utf-8;q=0.7,*;q=0.7\r\nKeep-Alive: 115\r\nConnection: keep-alive\r\nCookie: wp_ozh_wsa_visits=2; wp_ozh_wsa_visit_lasttime=xxxxxxxxxx; __utma=xxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.x; __utmz=xxxxxxxxx.xxxxxxxxxx.x.x.utmccn=(referral)|utmcsr=reader.livedoor.com|utmcct=/reader/|utmcmd=referral\r\n\r\n";

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "short".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let req = if which.ends_with("long") { REQ } else { REQ_SHORT };
    let limits = HeadLimits::default();
    let mut buf = BytesMut::with_capacity(1024);
    for _ in 0..n {
        if which.starts_with("raw") {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut r = httparse::Request::new(&mut headers);
            let s = r.parse(black_box(req)).unwrap();
            assert!(s.is_complete());
            black_box(r.headers.len());
        } else {
            buf.clear();
            buf.extend_from_slice(req);
            let mut scan = HeadScanner::request();
            let head = decode_request(&mut buf, &mut scan, &limits).unwrap().unwrap();
            black_box(head);
        }
    }
}
