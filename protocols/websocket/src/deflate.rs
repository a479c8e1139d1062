//! permessage-deflate (RFC 7692): parameter negotiation (§7.1) and the
//! per-message codec (§7.2): raw DEFLATE, each message ending in a sync
//! flush whose trailing `00 00 ff ff` is stripped on send and put back on
//! receive.
//!
//! The compressor is flate2's default (pure-Rust miniz_oxide) backend,
//! which always uses a 32 KiB window. When the peer asks us to compress
//! with a smaller window (`server_max_window_bits` from a client,
//! `client_max_window_bits` from a server) we agree and simply send every
//! message uncompressed, which §6 allows per message. Inflating works for
//! every window size, so the peer may compress however it likes.

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
            min_size: 32,
            level: 6,
        }
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
    offers.iter().filter(|e| e.name == NAME).find_map(|e| {
        let (snct, cnct, smwb, cmwb) = read_params(e)?;
        Some(DeflateParams {
            server_no_context_takeover: snct || cfg.server_no_context_takeover,
            client_no_context_takeover: cnct || cfg.client_no_context_takeover,
            server_max_window_bits: smwb.unwrap_or(15),
            // The client may only be limited if it said it can be.
            client_max_window_bits: cmwb.flatten().unwrap_or(15),
        })
    })
}

/// What a client offers.
pub fn client_offer(cfg: &DeflateConfig) -> String {
    let mut s = String::from(NAME);
    if cfg.server_no_context_takeover {
        s.push_str("; server_no_context_takeover");
    }
    if cfg.client_no_context_takeover {
        s.push_str("; client_no_context_takeover");
    }
    s.push_str("; client_max_window_bits");
    s
}

/// Client side: checks the server's answer to [`client_offer`].
pub fn accept_client(resp: &Extension, cfg: &DeflateConfig) -> Option<DeflateParams> {
    if resp.name != NAME {
        return None;
    }
    let (snct, cnct, smwb, cmwb) = read_params(resp)?;
    if cfg.server_no_context_takeover && !snct {
        return None;
    }
    Some(DeflateParams {
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct || cfg.client_no_context_takeover,
        server_max_window_bits: smwb.unwrap_or(15),
        // "client_max_window_bits" without a value is not valid in a
        // response (§7.1.2.2).
        client_max_window_bits: match cmwb {
            Some(Some(b)) => b,
            Some(None) => return None,
            None => 15,
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
        Deflate {
            // See the module doc: a smaller window than 15 means "never
            // compress".
            compress: (our_bits == 15)
                .then(|| Compress::new(Compression::new(cfg.level.min(9)), false)),
            reset_compress: our_nct,
            decompress: Decompress::new(false),
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
