//! permessage-deflate (RFC 7692): parameter negotiation (§7.1) and the
//! per-message codec (§7.2): raw DEFLATE, each message ending in a sync
//! flush whose trailing `00 00 ff ff` is stripped on send and put back on
//! receive.
//!
//! The codec is flate2 on its zlib-rs backend (pure Rust), which takes a
//! window size: each side compresses with the window negotiated for it
//! (`server_max_window_bits` / `client_max_window_bits`, 9–15) and inflates
//! with the window negotiated for the peer.
//!
//! Window bits 8: zlib (and zlib-rs after it) cannot produce raw DEFLATE
//! with a 256-byte window (`deflateInit2` refuses `windowBits = -8`; RFC
//! 7692 predates the limitation). We never ask for 8. When a peer limits
//! *us* to 8 (a client offering `server_max_window_bits=8`, a server
//! answering `client_max_window_bits=8`) we agree and send every message
//! uncompressed, which §6 allows per message; the peer's compressed
//! messages are still inflated. Inflating works for every window size.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::ProtocolError;

/// The extension token.
pub const NAME: &str = "permessage-deflate";

/// What this side asks for or accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Ask the server to reset its compressor after every message.
    pub server_no_context_takeover: bool,
    /// Ask the client to reset its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server's window, 9–15 (clamped). A client offers it as
    /// `server_max_window_bits` when below 15; a server never compresses
    /// with a larger one and announces it when below 15.
    pub server_max_window_bits: u8,
    /// The client's window, 9–15 (clamped). A client compresses with at
    /// most this and offers it as `client_max_window_bits=N` when below 15
    /// (bare `client_max_window_bits` otherwise); a server asks a client
    /// that offered the parameter for at most this.
    pub client_max_window_bits: u8,
    /// Messages shorter than this go out uncompressed.
    pub min_size: usize,
    /// Compression level 0–9.
    pub level: u32,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            min_size: 32,
            level: 6,
        }
    }
}

impl DeflateConfig {
    /// The configured windows, clamped to what can be compressed with.
    fn bits(&self) -> (u8, u8) {
        (
            self.server_max_window_bits.clamp(9, 15),
            self.client_max_window_bits.clamp(9, 15),
        )
    }
}

/// Negotiated parameters (§7.1), the same on both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// The server's LZ77 window (8–15).
    pub server_max_window_bits: u8,
    /// The client's LZ77 window (8–15).
    pub client_max_window_bits: u8,
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` value that states them.
    pub fn to_header(&self) -> String {
        let mut s = String::from(NAME);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < 15 {
            s.push_str(&alloc::format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        if self.client_max_window_bits < 15 {
            s.push_str(&alloc::format!(
                "; client_max_window_bits={}",
                self.client_max_window_bits
            ));
        }
        s
    }
}

/// One extension of a `Sec-WebSocket-Extensions` list: its name and
/// parameters (values unquoted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    /// The token, e.g. `permessage-deflate`.
    pub name: String,
    /// `name[=value]` parameters in order.
    pub params: Vec<(String, Option<String>)>,
}

/// Parses every `Sec-WebSocket-Extensions` value into extensions.
pub fn parse_extensions<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<Extension> {
    let mut out = Vec::new();
    for v in values {
        let Ok(v) = core::str::from_utf8(v) else {
            continue;
        };
        for item in v.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            if name.is_empty() {
                continue;
            }
            let params = parts
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.trim().into(), Some(v.trim().trim_matches('"').into())),
                    None => (p.into(), None),
                })
                .collect();
            out.push(Extension {
                name: name.into(),
                params,
            });
        }
    }
    out
}

fn window_bits(v: &str) -> Option<u8> {
    let b: u8 = v.parse().ok()?;
    // Leading zeros or signs would parse; §7.1.2 wants 1*DIGIT in 8..=15.
    (v.len() <= 2 && v.bytes().all(|c| c.is_ascii_digit()) && (8..=15).contains(&b)).then_some(b)
}

/// The parameters of one offer, if it is valid: (server_nct, client_nct,
/// server_max_window_bits, client_max_window_bits as Some(None) for "no
/// value").
#[allow(clippy::type_complexity)]
fn read_params(e: &Extension) -> Option<(bool, bool, Option<u8>, Option<Option<u8>>)> {
    let (mut snct, mut cnct, mut smwb, mut cmwb) = (false, false, None, None);
    for (k, v) in &e.params {
        match (k.as_str(), v) {
            ("server_no_context_takeover", None) if !snct => snct = true,
            ("client_no_context_takeover", None) if !cnct => cnct = true,
            ("server_max_window_bits", Some(v)) if smwb.is_none() => smwb = Some(window_bits(v)?),
            ("client_max_window_bits", v) if cmwb.is_none() => {
                cmwb = Some(match v {
                    Some(v) => Some(window_bits(v)?),
                    None => None,
                })
            }
            _ => return None,
        }
    }
    Some((snct, cnct, smwb, cmwb))
}

/// Server side (§7.1): accepts the first valid permessage-deflate offer.
pub fn negotiate_server(offers: &[Extension], cfg: &DeflateConfig) -> Option<DeflateParams> {
    negotiate_server_response(offers, cfg).map(|(p, _)| p)
}

/// As [`negotiate_server`], with the `Sec-WebSocket-Extensions` value to
/// answer: it states `server_max_window_bits` whenever the offer had it,
/// even at 15 (§7.1.2.1: a client that asked expects the answer).
pub fn negotiate_server_response(
    offers: &[Extension],
    cfg: &DeflateConfig,
) -> Option<(DeflateParams, String)> {
    let (our_bits, client_bits) = cfg.bits();
    offers.iter().filter(|e| e.name == NAME).find_map(|e| {
        let (snct, cnct, smwb, cmwb) = read_params(e)?;
        let p = DeflateParams {
            server_no_context_takeover: snct || cfg.server_no_context_takeover,
            client_no_context_takeover: cnct || cfg.client_no_context_takeover,
            // §7.1.2.1: the same or a smaller value than offered, or ours
            // unasked (8 offered: see the module doc).
            server_max_window_bits: smwb.unwrap_or(15).min(our_bits),
            // §7.1.2.2: the client may only be limited if it said it can
            // be.
            client_max_window_bits: match cmwb {
                Some(v) => v.unwrap_or(15).min(client_bits),
                None => 15,
            },
        };
        let mut header = p.to_header();
        if smwb.is_some() && p.server_max_window_bits == 15 {
            header.push_str("; server_max_window_bits=15");
        }
        Some((p, header))
    })
}

/// What a client offers.
pub fn client_offer(cfg: &DeflateConfig) -> String {
    let (server_bits, our_bits) = cfg.bits();
    let mut s = String::from(NAME);
    if cfg.server_no_context_takeover {
        s.push_str("; server_no_context_takeover");
    }
    if cfg.client_no_context_takeover {
        s.push_str("; client_no_context_takeover");
    }
    if server_bits < 15 {
        s.push_str(&alloc::format!("; server_max_window_bits={server_bits}"));
    }
    if our_bits < 15 {
        s.push_str(&alloc::format!("; client_max_window_bits={our_bits}"));
    } else {
        s.push_str("; client_max_window_bits");
    }
    s
}

/// Client side: checks the server's answer to [`client_offer`].
pub fn accept_client(resp: &Extension, cfg: &DeflateConfig) -> Option<DeflateParams> {
    if resp.name != NAME {
        return None;
    }
    let (server_bits, our_bits) = cfg.bits();
    let (snct, cnct, smwb, cmwb) = read_params(resp)?;
    if cfg.server_no_context_takeover && !snct {
        return None;
    }
    // Asked for a window: the answer must state one no larger (§7.1.2.1).
    let server_max_window_bits = match smwb {
        Some(b) if b <= server_bits => b,
        None if server_bits == 15 => 15,
        _ => return None,
    };
    Some(DeflateParams {
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct || cfg.client_no_context_takeover,
        server_max_window_bits,
        // "client_max_window_bits" without a value is not valid in a
        // response (§7.1.2.2); a value above what we offered neither.
        client_max_window_bits: match cmwb {
            Some(Some(b)) if b <= our_bits => b,
            Some(_) => return None,
            None => our_bits,
        },
    })
}

/// The trailer a sync flush ends with (§7.2.1).
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// Output is produced this many bytes at a time.
const STEP: usize = 16 * 1024;

/// One side's compressor and decompressor.
pub struct Deflate {
    compress: Option<Compress>,
    reset_compress: bool,
    decompress: Decompress,
    reset_decompress: bool,
    min_size: usize,
}

impl core::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Deflate").finish_non_exhaustive()
    }
}

impl Deflate {
    /// The codec for `params`; `server` says which side we are.
    pub fn new(params: &DeflateParams, server: bool, cfg: &DeflateConfig) -> Deflate {
        let (our_bits, our_nct, their_nct) = if server {
            (
                params.server_max_window_bits,
                params.server_no_context_takeover,
                params.client_no_context_takeover,
            )
        } else {
            (
                params.client_max_window_bits,
                params.client_no_context_takeover,
                params.server_no_context_takeover,
            )
        };
        let their_bits = if server {
            params.client_max_window_bits
        } else {
            params.server_max_window_bits
        };
        let level = Compression::new(cfg.level.min(9));
        Deflate {
            // 8 bits cannot be produced (see the module doc): never
            // compress then.
            compress: (9..=15)
                .contains(&our_bits)
                .then(|| Compress::new_with_window_bits(level, false, our_bits)),
            reset_compress: our_nct,
            // A window at least as large as the peer's; zlib's smallest
            // raw window is 9 bits, which holds an 8-bit one.
            decompress: Decompress::new_with_window_bits(false, their_bits.clamp(9, 15)),
            reset_decompress: their_nct,
            min_size: cfg.min_size,
        }
    }

    /// Whether a message of `len` bytes goes out compressed.
    pub fn wants(&self, len: usize) -> bool {
        self.compress.is_some() && len >= self.min_size
    }

    /// Compresses one whole message into `out` (appended, tail stripped).
    pub fn compress(&mut self, data: &[u8], out: &mut BytesMut) -> Result<(), ProtocolError> {
        let Some(c) = self.compress.as_mut() else {
            out.extend_from_slice(data);
            return Ok(());
        };
        let base = out.len();
        let mut input = data;
        loop {
            let (in0, out0) = (c.total_in(), c.total_out());
            let start = out.len();
            let step = STEP.max(input.len() + 64);
            out.resize(start + step, 0);
            let r = c.compress(input, &mut out[start..], FlushCompress::Sync);
            let used = (c.total_in() - in0) as usize;
            let made = (c.total_out() - out0) as usize;
            out.truncate(start + made);
            r.map_err(|_| ProtocolError::Compression("deflate failed"))?;
            input = input.get(used..).unwrap_or_default();
            // Done when all input is in and the flush fitted.
            if input.is_empty() && made < step {
                break;
            }
            if used == 0 && made == 0 {
                break;
            }
        }
        if out.len() >= base + 4 && out[out.len() - 4..] == TAIL {
            out.truncate(out.len() - 4);
        }
        if self.reset_compress {
            c.reset();
        }
        Ok(())
    }

    /// Inflates a piece of a compressed message into `out` (appended),
    /// failing once `out` would grow past `max` bytes in total.
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut BytesMut,
        max: usize,
    ) -> Result<(), ProtocolError> {
        let d = &mut self.decompress;
        let mut input = input;
        loop {
            let (in0, out0) = (d.total_in(), d.total_out());
            let start = out.len();
            let room = max.saturating_sub(start);
            // One byte past the limit proves the message is too big.
            let step = STEP.min(room.saturating_add(1));
            out.resize(start + step, 0);
            let r = d.decompress(input, &mut out[start..], FlushDecompress::Sync);
            let used = (d.total_in() - in0) as usize;
            let made = (d.total_out() - out0) as usize;
            out.truncate(start + made);
            let status = r.map_err(|_| ProtocolError::Compression("invalid DEFLATE data"))?;
            if out.len() > max {
                return Err(ProtocolError::MessageTooBig { max });
            }
            input = input.get(used..).unwrap_or_default();
            if status == Status::StreamEnd {
                // A final block (BFINAL): the message's stream is over;
                // anything after it is the empty sync block.
                d.reset(false);
                return Ok(());
            }
            if input.is_empty() && made < step {
                return Ok(());
            }
            if used == 0 && made == 0 {
                // No progress with input left: the data is not DEFLATE.
                return Err(ProtocolError::Compression("inflate stalled"));
            }
        }
    }

    /// Ends a received compressed message (feeds the stripped tail).
    pub fn finish_message(&mut self, out: &mut BytesMut, max: usize) -> Result<(), ProtocolError> {
        self.inflate(&TAIL, out, max)?;
        if self.reset_decompress {
            self.decompress.reset(false);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(s: &str) -> Vec<Extension> {
        parse_extensions(core::iter::once(s.as_bytes()))
    }

    #[test]
    fn negotiation() {
        let cfg = DeflateConfig::default();
        let p = negotiate_server(&ext("permessage-deflate; client_max_window_bits"), &cfg).unwrap();
        assert_eq!(p.to_header(), "permessage-deflate");
        let p = negotiate_server(
            &ext("permessage-deflate; server_max_window_bits=10; client_no_context_takeover, permessage-deflate"),
            &cfg,
        )
        .unwrap();
        assert_eq!(
            p.to_header(),
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=10"
        );
        // An invalid first offer falls back to the next.
        let p = negotiate_server(&ext("permessage-deflate; server_max_window_bits=7, permessage-deflate; server_no_context_takeover"), &cfg).unwrap();
        assert!(p.server_no_context_takeover);
        assert_eq!(
            negotiate_server(&ext("permessage-deflate; foo=1"), &cfg),
            None
        );
        assert_eq!(negotiate_server(&ext("x-webkit-deflate-frame"), &cfg), None);
        let a = accept_client(
            &ext("permessage-deflate; client_max_window_bits=9")[0],
            &cfg,
        )
        .unwrap();
        assert_eq!(a.client_max_window_bits, 9);
        assert_eq!(
            accept_client(&ext("permessage-deflate; client_max_window_bits")[0], &cfg),
            None
        );
    }

    fn params() -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }

    #[test]
    fn round_trip_with_context() {
        let cfg = DeflateConfig::default();
        let mut a = Deflate::new(&params(), true, &cfg);
        let mut b = Deflate::new(&params(), false, &cfg);
        let msg: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for _ in 0..3 {
            let mut wire = BytesMut::new();
            a.compress(&msg, &mut wire).unwrap();
            assert!(wire.len() < msg.len() / 4);
            let mut out = BytesMut::new();
            for piece in wire.chunks(777) {
                b.inflate(piece, &mut out, usize::MAX).unwrap();
            }
            b.finish_message(&mut out, usize::MAX).unwrap();
            assert_eq!(&out[..], &msg[..]);
        }
    }

    #[test]
    fn window_bits_negotiation() {
        // A client asking for a small server window gets it (or smaller).
        let cfg = DeflateConfig::default();
        let p =
            negotiate_server(&ext("permessage-deflate; server_max_window_bits=9"), &cfg).unwrap();
        assert_eq!(p.server_max_window_bits, 9);
        // A server configured for a small window announces it unasked,
        // and limits a client that offered client_max_window_bits.
        let small = DeflateConfig {
            server_max_window_bits: 10,
            client_max_window_bits: 11,
            ..cfg
        };
        let p =
            negotiate_server(&ext("permessage-deflate; client_max_window_bits"), &small).unwrap();
        assert_eq!(
            p.to_header(),
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11"
        );
        // ... but not one that did not offer it (§7.1.2.2).
        let p = negotiate_server(&ext("permessage-deflate"), &small).unwrap();
        assert_eq!(p.client_max_window_bits, 15);
        // Asked for, the server's window is answered even at 15.
        let (_, h) =
            negotiate_server_response(&ext("permessage-deflate; server_max_window_bits=15"), &cfg)
                .unwrap();
        assert_eq!(h, "permessage-deflate; server_max_window_bits=15");
        // 8 is agreed to (and then never compressed with).
        let p =
            negotiate_server(&ext("permessage-deflate; server_max_window_bits=8"), &cfg).unwrap();
        assert_eq!(p.server_max_window_bits, 8);
        assert!(!Deflate::new(&p, true, &cfg).wants(1000));
        assert!(Deflate::new(&p, false, &cfg).wants(1000));
        // Client: the offer, and answers that break it.
        assert_eq!(
            client_offer(&small),
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11"
        );
        let ok = ext("permessage-deflate; server_max_window_bits=9; client_max_window_bits=11");
        let a = accept_client(&ok[0], &small).unwrap();
        assert_eq!(
            (a.server_max_window_bits, a.client_max_window_bits),
            (9, 11)
        );
        for bad in [
            "permessage-deflate",
            "permessage-deflate; server_max_window_bits=12",
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12",
        ] {
            assert_eq!(accept_client(&ext(bad)[0], &small), None, "{bad}");
        }
        // No value answered: the client uses what it offered.
        let a = accept_client(
            &ext("permessage-deflate; server_max_window_bits=10")[0],
            &small,
        )
        .unwrap();
        assert_eq!(a.client_max_window_bits, 11);
    }

    #[test]
    fn every_window_size_round_trips_within_its_window() {
        // Repeats at distances of 300 B to 20 KiB: a compressor that used
        // more window than negotiated would make the inflater (made with
        // the negotiated window) fail with "distance too far back".
        let block: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
        let big: Vec<u8> = (0..20_000u32).map(|i| (i * 13 % 241) as u8).collect();
        let msg: Vec<u8> = [&block[..], &block, &big, &big, &block].concat();
        for bits in 9..=15u8 {
            for nct in [false, true] {
                let p = DeflateParams {
                    server_no_context_takeover: nct,
                    client_no_context_takeover: nct,
                    server_max_window_bits: bits,
                    client_max_window_bits: bits,
                };
                let cfg = DeflateConfig::default();
                for server in [true, false] {
                    let mut tx = Deflate::new(&p, server, &cfg);
                    let mut rx = Deflate::new(&p, !server, &cfg);
                    for _ in 0..3 {
                        let mut wire = BytesMut::new();
                        tx.compress(&msg, &mut wire).unwrap();
                        assert!(wire.len() < msg.len(), "bits {bits}: compressed");
                        let mut out = BytesMut::new();
                        rx.inflate(&wire, &mut out, usize::MAX).unwrap();
                        rx.finish_message(&mut out, usize::MAX).unwrap();
                        assert_eq!(&out[..], &msg[..], "bits {bits} nct {nct}");
                    }
                }
            }
        }
    }

    #[test]
    fn zip_bomb_stops_at_the_limit() {
        let cfg = DeflateConfig::default();
        let mut a = Deflate::new(&params(), true, &cfg);
        let mut b = Deflate::new(&params(), false, &cfg);
        let mut wire = BytesMut::new();
        a.compress(&alloc::vec![0u8; 10_000_000], &mut wire)
            .unwrap();
        assert!(wire.len() < 20_000);
        let mut out = BytesMut::new();
        assert_eq!(
            b.inflate(&wire, &mut out, 1 << 20),
            Err(ProtocolError::MessageTooBig { max: 1 << 20 })
        );
        assert!(out.len() <= (1 << 20) + 1);
    }
}
