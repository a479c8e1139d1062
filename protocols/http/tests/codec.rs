//! Codec unit tests: one per hardening rule, plus heads, framing and the
//! chunked coding. Each hardening case is checked at the codec (the typed
//! error) and at the server machine (the status it answers, then a close).

use bytes::{Bytes, BytesMut};
use twill_core::testing::Sim;
use twill_core::{Close, ConnId};
use twill_http::codec::chunked::{self, decode_all, Chunk, ChunkedDecoder, ChunkedLimits};
use twill_http::codec::framing::{request_body, response_body};
use twill_http::codec::head::{decode_request, decode_response, HeadLimits, HeadScanner};
use twill_http::{BodyKind, ProtocolError, Server, ServerConfig, ServerEvent, Version};

fn parse(input: &[u8]) -> Result<(twill_http::RequestHead, BodyKind), ProtocolError> {
    parse_with(input, &HeadLimits::default())
}

fn parse_with(
    input: &[u8],
    limits: &HeadLimits,
) -> Result<(twill_http::RequestHead, BodyKind), ProtocolError> {
    let mut buf = BytesMut::from(input);
    let mut scan = HeadScanner::request();
    let head = decode_request(&mut buf, &mut scan, limits)?.expect("complete head");
    let body = request_body(&head)?;
    Ok((head, body))
}

fn err(input: &[u8]) -> ProtocolError {
    parse(input).expect_err("must be refused")
}

/// What the server machine answers to `input`: the status line, and
/// whether it closed.
fn server_answer(input: &[u8]) -> (String, bool) {
    let mut s = Sim::new(Server::new(ServerConfig::default()));
    let c = ConnId(1);
    s.accept(c);
    s.data(c, input);
    let text = s.sent_text(c);
    let line = text.lines().next().unwrap_or("").to_string();
    let violation = s
        .events
        .iter()
        .any(|e| matches!(e, ServerEvent::Violation { .. }));
    assert!(violation, "no violation event for {input:?}");
    // A lingering close: the sending side at once, all of it after the
    // linger time (or the client's EOF).
    let half = s.closes == vec![(c, Close::WriteHalf)];
    s.advance(twill_core::Duration::from_secs(3));
    (
        line,
        half && s.closes == vec![(c, Close::WriteHalf), (c, Close::Graceful)],
    )
}

fn case(input: &[u8], error: ProtocolError, status: &str) {
    assert_eq!(err(input), error, "{}", String::from_utf8_lossy(input));
    let (line, closed) = server_answer(input);
    assert!(
        line.starts_with(&format!("HTTP/1.1 {status} ")),
        "{}: answered {line:?}",
        String::from_utf8_lossy(input)
    );
    assert!(closed, "must close after {line}");
}

#[test]
fn simple_request_head() {
    let (h, body) = parse(
        b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-A: 1\r\nx-a: 2\r\n\r\n",
    )
    .unwrap();
    assert_eq!(h.method(), "GET");
    assert_eq!(h.target(), "/a?b=c");
    assert_eq!(h.version(), Version::Http11);
    assert_eq!(h.header("HOST"), Some(&b"example.com"[..]));
    assert_eq!(
        h.headers().get_all("x-a").collect::<Vec<_>>(),
        vec![&b"1"[..], b"2"]
    );
    assert_eq!(h.headers().len(), 4);
    assert_eq!(body, BodyKind::Empty);
}

#[test]
fn heads_are_zero_copy() {
    let input = b"GET / HTTP/1.1\r\nHost: h\r\n\r\nrest";
    let mut buf = BytesMut::from(&input[..]);
    let mut scan = HeadScanner::request();
    let h = decode_request(&mut buf, &mut scan, &HeadLimits::default())
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..], b"rest");
    let raw = h.raw();
    let host = h.header("host").unwrap();
    let off = host.as_ptr() as usize - raw.as_ptr() as usize;
    assert_eq!(&raw[off..off + 1], b"h");
}

#[test]
fn leading_empty_lines_are_ignored() {
    let (h, _) = parse(b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(h.method(), "GET");
}

/// Empty lines before the request line are not part of the head: its
/// method, target and raw bytes are those of the head without them,
/// whether it came whole or a byte at a time, and through `parse_request`.
#[test]
fn leading_empty_lines_are_not_kept() {
    let head = b"PUT /a?b HTTP/1.0\r\nHost: h\r\nX: 1\r\n\r\n";
    let lim = HeadLimits::default();
    for lead in [&b""[..], b"\r\n", b"\r\n\r\n\r\n"] {
        let wire = [lead, &head[..]].concat();
        let mut whole = BytesMut::from(&wire[..]);
        let a = decode_request(&mut whole, &mut HeadScanner::request(), &lim)
            .unwrap()
            .unwrap();
        let (mut buf, mut scan, mut b) = (BytesMut::new(), HeadScanner::request(), None);
        for x in &wire {
            buf.extend_from_slice(&[*x]);
            if let Some(h) = decode_request(&mut buf, &mut scan, &lim).unwrap() {
                b = Some(h);
            }
        }
        let b = b.unwrap();
        let c = twill_http::codec::head::parse_request(Bytes::from(wire.clone()), &lim).unwrap();
        for h in [&a, &b, &c] {
            assert_eq!(h.method(), "PUT");
            assert!(!h.is_head() && !h.is_connect());
            assert_eq!(h.target(), "/a?b");
            assert_eq!(h.version(), Version::Http10);
            assert_eq!(h.raw(), &head[..]);
            assert_eq!(h.header("x"), Some(&b"1"[..]));
        }
        assert_eq!(a, b);
        assert_eq!(a, c);
    }
}

/// Heads are equal by what they say, not by where the parts lie: two heads
/// of the same shape but another method or target differ.
#[test]
fn heads_compare_by_text() {
    let lim = HeadLimits::default();
    let get = |wire: &[u8]| {
        let mut buf = BytesMut::from(wire);
        decode_request(&mut buf, &mut HeadScanner::request(), &lim)
            .unwrap()
            .unwrap()
    };
    let a = get(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(a, get(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"));
    assert_ne!(a, get(b"PUT /x HTTP/1.1\r\nHost: h\r\n\r\n"));
    assert_ne!(a, get(b"GET /y HTTP/1.1\r\nHost: h\r\n\r\n"));
    assert_ne!(a, get(b"GET /x HTTP/1.0\r\nHost: h\r\n\r\n"));
    assert_ne!(a, get(b"GET /x HTTP/1.1\r\nHost: i\r\n\r\n"));
    let resp = |wire: &[u8]| {
        let mut buf = BytesMut::from(wire);
        decode_response(&mut buf, &mut HeadScanner::response(), &lim)
            .unwrap()
            .unwrap()
    };
    let r = resp(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n");
    assert_eq!(r, resp(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n"));
    assert_ne!(r, resp(b"HTTP/1.1 200 No\r\nA: b\r\n\r\n"));
    assert_ne!(r, resp(b"HTTP/1.1 201 OK\r\nA: b\r\n\r\n"));
}

#[test]
fn incremental_scan_does_not_rescan() {
    let input = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
    let mut buf = BytesMut::new();
    let mut scan = HeadScanner::request();
    let lim = HeadLimits::default();
    for (i, b) in input.iter().enumerate() {
        buf.extend_from_slice(&[*b]);
        let r = decode_request(&mut buf, &mut scan, &lim).unwrap();
        assert_eq!(r.is_some(), i == input.len() - 1);
    }
}

#[test]
fn conflicting_content_length() {
    case(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
        ProtocolError::MultipleContentLength,
        "400",
    );
}

#[test]
fn duplicate_content_length() {
    case(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        ProtocolError::MultipleContentLength,
        "400",
    );
    case(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc",
        ProtocolError::MultipleContentLength,
        "400",
    );
}

#[test]
fn bad_content_length() {
    for v in ["+3", "-1", "0x3", "3 3", "", "99999999999999999999"] {
        let req = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {v}\r\n\r\n");
        case(req.as_bytes(), ProtocolError::BadContentLength, "400");
    }
}

#[test]
fn transfer_encoding_with_content_length() {
    case(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        ProtocolError::TransferEncodingAndContentLength,
        "400",
    );
}

#[test]
fn unknown_transfer_coding() {
    case(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        ProtocolError::UnknownTransferCoding,
        "501",
    );
    case(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n",
        ProtocolError::UnknownTransferCoding,
        "501",
    );
}

#[test]
fn chunked_not_final() {
    case(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        ProtocolError::ChunkedNotFinal,
        "400",
    );
    case(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        ProtocolError::ChunkedNotFinal,
        "400",
    );
}

#[test]
fn transfer_encoding_in_http10() {
    case(
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ProtocolError::TransferEncodingHttp10,
        "400",
    );
}

#[test]
fn obs_fold() {
    case(
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n",
        ProtocolError::ObsFold,
        "400",
    );
}

#[test]
fn bare_lf() {
    case(
        b"GET / HTTP/1.1\nHost: h\r\n\r\n",
        ProtocolError::BareLf,
        "400",
    );
    case(
        b"GET / HTTP/1.1\r\nHost: h\n\n",
        ProtocolError::BareLf,
        "400",
    );
}

#[test]
fn bare_cr() {
    case(
        b"GET / HTTP/1.1\r\nHost: h\rX-A: 1\r\n\r\n",
        ProtocolError::BareCr,
        "400",
    );
}

#[test]
fn space_before_colon() {
    case(
        b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
        ProtocolError::SpaceBeforeColon,
        "400",
    );
}

#[test]
fn invalid_header_name() {
    case(
        b"GET / HTTP/1.1\r\nHost: h\r\nBad(Name): 1\r\n\r\n",
        ProtocolError::InvalidHeaderName,
        "400",
    );
    case(
        b"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n",
        ProtocolError::InvalidHeaderName,
        "400",
    );
}

#[test]
fn invalid_header_value() {
    case(
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",
        ProtocolError::InvalidHeaderValue,
        "400",
    );
    case(
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x07b\r\n\r\n",
        ProtocolError::InvalidHeaderValue,
        "400",
    );
}

#[test]
fn missing_or_repeated_host() {
    case(b"GET / HTTP/1.1\r\n\r\n", ProtocolError::BadHost, "400");
    case(
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ProtocolError::BadHost,
        "400",
    );
    // HTTP/1.0 needs none.
    assert!(parse(b"GET / HTTP/1.0\r\n\r\n").is_ok());
}

#[test]
fn uri_too_long() {
    let long = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(9000));
    case(long.as_bytes(), ProtocolError::UriTooLong, "414");
    // Refused before the line even ends.
    let mut scan = HeadScanner::request();
    let partial = format!("GET /{}", "a".repeat(9000));
    assert_eq!(
        scan.scan(partial.as_bytes(), &HeadLimits::default()),
        Err(ProtocolError::UriTooLong)
    );
}

#[test]
fn head_too_large() {
    let big = format!(
        "GET / HTTP/1.1\r\nHost: h\r\n{}\r\n",
        (0..20)
            .map(|i| format!("X-{i}: {}\r\n", "v".repeat(4000)))
            .collect::<String>()
    );
    case(big.as_bytes(), ProtocolError::HeadTooLarge, "431");
}

#[test]
fn too_many_headers() {
    let many = format!(
        "GET / HTTP/1.1\r\nHost: h\r\n{}\r\n",
        (0..150)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect::<String>()
    );
    case(many.as_bytes(), ProtocolError::TooManyHeaders, "431");
}

#[test]
fn body_too_large() {
    let req = format!(
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
        64u64 << 20
    );
    // The codec reads the length; the server's limit refuses it.
    assert_eq!(parse(req.as_bytes()).unwrap().1, BodyKind::Length(64 << 20));
    let (line, closed) = server_answer(req.as_bytes());
    assert!(line.starts_with("HTTP/1.1 413 "), "{line}");
    assert!(closed);
}

#[test]
fn unsupported_versions() {
    for v in ["HTTP/2.0", "HTTP/1.2", "HTTP/3"] {
        let req = format!("GET / {v}\r\nHost: h\r\n\r\n");
        case(req.as_bytes(), ProtocolError::UnsupportedVersion, "505");
    }
    case(
        b"GET / FTP/1.1\r\nHost: h\r\n\r\n",
        ProtocolError::BadRequestLine,
        "400",
    );
}

#[test]
fn bad_request_lines() {
    for l in [
        "GET\r\n",
        "GET /\r\n",
        "G(T / HTTP/1.1\r\n",
        " / HTTP/1.1\r\n",
        "GET  / HTTP/1.1\r\n",
    ] {
        let req = format!("{l}Host: h\r\n\r\n");
        let e = err(req.as_bytes());
        assert_eq!(e.status(), 400, "{l:?}: {e:?}");
    }
}

#[test]
fn response_framing() {
    let head = |s: &[u8]| {
        let mut buf = BytesMut::from(s);
        decode_response(
            &mut buf,
            &mut HeadScanner::response(),
            &HeadLimits::default(),
        )
        .unwrap()
        .unwrap()
    };
    let ok_len = head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(response_body(&ok_len, "GET"), Ok(BodyKind::Length(5)));
    assert_eq!(response_body(&ok_len, "HEAD"), Ok(BodyKind::Empty));
    let chunked = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(response_body(&chunked, "GET"), Ok(BodyKind::Chunked));
    let close = head(b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(response_body(&close, "GET"), Ok(BodyKind::CloseDelimited));
    for s in [204u16, 304, 100] {
        let h = head(format!("HTTP/1.1 {s} X\r\nContent-Length: 5\r\n\r\n").as_bytes());
        assert_eq!(response_body(&h, "GET"), Ok(BodyKind::Empty), "{s}");
    }
    let tunnel = head(b"HTTP/1.1 200 Connection established\r\n\r\n");
    assert_eq!(response_body(&tunnel, "CONNECT"), Ok(BodyKind::Empty));
    let gz = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
    assert_eq!(response_body(&gz, "GET"), Ok(BodyKind::CloseDelimited));
    let both = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n");
    assert_eq!(
        response_body(&both, "GET"),
        Err(ProtocolError::TransferEncodingAndContentLength)
    );
    let h10 = head(b"HTTP/1.0 200 OK\r\n\r\n");
    assert_eq!(h10.version(), Version::Http10);
    assert_eq!(h10.reason(), "OK");
}

#[test]
fn chunked_with_extensions_and_trailers() {
    let input = b"4;ext=1\r\nWiki\r\n5 ; a=\"b\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\nX-T: 1\r\n\r\nNEXT";
    let (data, trailers, used) = decode_all(input, ChunkedLimits::default()).unwrap();
    assert_eq!(&data[..], b"Wikipedia in\r\n\r\nchunks.");
    assert_eq!(trailers.get("expires"), Some(&b"never"[..]));
    assert_eq!(trailers.len(), 2);
    assert_eq!(&input[used..], b"NEXT");
}

#[test]
fn chunked_errors() {
    let lim = ChunkedLimits::default();
    let e = |i: &[u8]| decode_all(i, lim).unwrap_err();
    assert_eq!(e(b"x\r\n"), ProtocolError::BadChunkSize);
    assert_eq!(e(b"\r\n"), ProtocolError::BadChunkSize);
    assert_eq!(e(b"3\r\nabcX\r\n0\r\n\r\n"), ProtocolError::BadChunkEnd);
    assert_eq!(e(b"3\r\nabc\rX0\r\n\r\n"), ProtocolError::BadChunkEnd);
    assert_eq!(e(b"3\nabc\r\n0\r\n\r\n"), ProtocolError::BadChunkSize);
    assert_eq!(e(b"11111111111111111\r\n"), ProtocolError::BadChunkSize);
    let long_ext = format!("1;{}\r\na\r\n0\r\n\r\n", "e".repeat(2000));
    assert_eq!(e(long_ext.as_bytes()), ProtocolError::ChunkExtensionTooLong);
    let long_trailer = format!("0\r\nX: {}\r\n\r\n", "v".repeat(9000));
    assert_eq!(e(long_trailer.as_bytes()), ProtocolError::BadTrailers);
    assert_eq!(e(b"0\r\nX: 1\n\r\n"), ProtocolError::BadTrailers);
    assert_eq!(e(b"0\r\nBad Name: 1\r\n\r\n"), ProtocolError::BadTrailers);
    assert_eq!(e(b"3\r\nab"), ProtocolError::Truncated);
}

#[test]
fn chunked_decoder_byte_at_a_time() {
    let input = b"4\r\nWiki\r\n5\r\npedia\r\n0\r\nA: b\r\n\r\n";
    let mut d = ChunkedDecoder::default();
    let mut data = Vec::new();
    let mut end = None;
    for b in input {
        let (n, item) = d.decode(std::slice::from_ref(b)).unwrap();
        assert_eq!(n, 1);
        match item {
            Some(Chunk::Data { start, end }) => data.extend_from_slice(&[*b][start..end]),
            Some(Chunk::End { trailers }) => end = Some(trailers),
            None => {}
        }
    }
    assert_eq!(data, b"Wikipedia");
    assert_eq!(end.unwrap().get("a"), Some(&b"b"[..]));
    assert!(d.is_done());
}

#[test]
fn chunked_encoder() {
    let mut buf = BytesMut::new();
    chunked::write_chunk(&mut buf, b"hello world, this is long");
    chunked::write_chunk(&mut buf, b"");
    chunked::write_last_chunk(&mut buf, &[("X-Sum", "1")]).unwrap();
    assert_eq!(
        &buf[..],
        b"19\r\nhello world, this is long\r\n0\r\nX-Sum: 1\r\n\r\n"
    );
    assert!(chunked::write_last_chunk(&mut BytesMut::new(), &[("X", "a\r\nb")]).is_err());
    let (data, t, _) = decode_all(&buf, ChunkedLimits::default()).unwrap();
    assert_eq!(&data[..], b"hello world, this is long");
    assert_eq!(t.get("x-sum"), Some(&b"1"[..]));
    let _ = Bytes::new();
}

#[test]
fn non_ascii_target() {
    case(
        "GET /caf\u{e9} HTTP/1.1\r\nHost: h\r\n\r\n".as_bytes(),
        ProtocolError::BadRequestLine,
        "400",
    );
}
