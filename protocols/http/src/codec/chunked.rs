//! The chunked transfer coding (RFC 9112 §7.1): a strict incremental
//! decoder and the encoder.
//!
//! The decoder checks the CRLF after every chunk's data, bounds the
//! chunk-size line (at most 16 hex digits), the extensions of one chunk and
//! the trailer section, and never buffers body data: each call reports the
//! next piece of data as a range of its input.

use bytes::{BufMut, Bytes, BytesMut};

use super::head::{parse_trailers, Headers};
use crate::error::ProtocolError;

/// Bounds on the parts of a chunked body that are not data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkedLimits {
    /// Longest extension part (`;name=value…`) of one chunk-size line.
    pub max_extension: usize,
    /// Longest trailer section, final empty line included.
    pub max_trailers: usize,
    /// Most trailer fields.
    pub max_trailer_fields: usize,
}

impl Default for ChunkedLimits {
    /// 1 KiB of extensions per chunk, 8 KiB and 32 fields of trailers.
    fn default() -> Self {
        ChunkedLimits {
            max_extension: 1024,
            max_trailers: 8 * 1024,
            max_trailer_fields: 32,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Hex digits of the size (count so far).
    Size { digits: u8 },
    /// After the size: optional whitespace and extensions until CR.
    Ext { len: usize },
    /// The LF of the size line.
    SizeLf,
    /// Data bytes still to come.
    Data,
    /// The CR after data.
    DataCr,
    /// The LF after data.
    DataLf,
    /// Trailer section (after the last chunk), collected up to the limit.
    Trailers,
    /// The body is complete.
    Done,
}

/// What one [`ChunkedDecoder::decode`] call found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Body bytes: `input[start..end]`.
    Data {
        /// Start in the input.
        start: usize,
        /// End in the input.
        end: usize,
    },
    /// The last chunk and the trailer section have arrived; the body is
    /// complete.
    End {
        /// The trailer fields (often empty).
        trailers: Headers,
    },
}

/// The incremental chunked decoder. Feed it input with
/// [`decode`](Self::decode); it keeps no body bytes, only a bounded
/// trailer section.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    limits: ChunkedLimits,
    trailers: BytesMut,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder::new(ChunkedLimits::default())
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new(limits: ChunkedLimits) -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            size: 0,
            limits,
            trailers: BytesMut::new(),
        }
    }

    /// Whether the whole body (with trailers) has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`: returns how many bytes were consumed and what
    /// was found. `(n, None)` means the `n` bytes were all framing (or the
    /// input ran out inside framing); call again with the rest. After
    /// [`Chunk::End`] nothing more is consumed.
    ///
    /// # Errors
    /// The framing is malformed or over a limit. The decoder is stuck then.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<Chunk>), ProtocolError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size { digits } => {
                    if let Some(d) = hex(b) {
                        if digits >= 16 {
                            return Err(ProtocolError::BadChunkSize);
                        }
                        self.size = (self.size << 4) | u64::from(d);
                        self.state = State::Size { digits: digits + 1 };
                        i += 1;
                    } else if digits == 0 {
                        return Err(ProtocolError::BadChunkSize);
                    } else {
                        match b {
                            b'\r' => self.state = State::SizeLf,
                            b';' | b' ' | b'\t' => self.state = State::Ext { len: 1 },
                            _ => return Err(ProtocolError::BadChunkSize),
                        }
                        i += 1;
                    }
                }
                State::Ext { len } => {
                    // Extensions are ignored, but bounded and free of
                    // control bytes.
                    let rest = &input[i..];
                    let room = self.limits.max_extension.saturating_sub(len);
                    let upto = rest.len().min(room + 1);
                    match memchr::memchr(b'\r', &rest[..upto]) {
                        Some(k) => {
                            if !rest[..k]
                                .iter()
                                .all(|&c| c == b'\t' || c >= 0x20 && c != 0x7f)
                            {
                                return Err(ProtocolError::BadChunkSize);
                            }
                            self.state = State::SizeLf;
                            i += k + 1;
                        }
                        None => {
                            // Bytes within the limit are checked first, so
                            // the error does not depend on how input is cut.
                            if !rest[..upto.min(room)]
                                .iter()
                                .all(|&c| c == b'\t' || c >= 0x20 && c != 0x7f)
                            {
                                return Err(ProtocolError::BadChunkSize);
                            }
                            if upto > room {
                                return Err(ProtocolError::ChunkExtensionTooLong);
                            }
                            self.state = State::Ext { len: len + upto };
                            i += upto;
                        }
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ProtocolError::BadChunkSize);
                    }
                    i += 1;
                    if self.size == 0 {
                        self.state = State::Trailers;
                    } else {
                        self.state = State::Data;
                    }
                }
                State::Data => {
                    let n = (input.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok((
                        i + n,
                        Some(Chunk::Data {
                            start: i,
                            end: i + n,
                        }),
                    ));
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ProtocolError::BadChunkEnd);
                    }
                    self.state = State::DataLf;
                    i += 1;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ProtocolError::BadChunkEnd);
                    }
                    self.state = State::Size { digits: 0 };
                    self.size = 0;
                    i += 1;
                }
                State::Trailers => {
                    // Collect up to the end of the section: an empty line.
                    let rest = &input[i..];
                    let room = self.limits.max_trailers.saturating_sub(self.trailers.len());
                    let mut taken = 0;
                    let mut done = false;
                    for (k, &c) in rest.iter().enumerate() {
                        if k >= room {
                            return Err(ProtocolError::BadTrailers);
                        }
                        self.trailers.put_u8(c);
                        taken = k + 1;
                        if c == b'\n' {
                            let t = &self.trailers[..];
                            if t == b"\r\n" || t.ends_with(b"\r\n\r\n") {
                                done = true;
                                break;
                            }
                            if !t.ends_with(b"\r\n") {
                                return Err(ProtocolError::BadTrailers);
                            }
                        }
                    }
                    i += taken;
                    if done {
                        self.state = State::Done;
                        let section = core::mem::take(&mut self.trailers).freeze();
                        let trailers = if section.len() == 2 {
                            Headers::default()
                        } else {
                            parse_trailers(section, self.limits.max_trailer_fields)?
                        };
                        return Ok((i, Some(Chunk::End { trailers })));
                    }
                }
                State::Done => return Ok((i, None)),
            }
        }
        if self.state == State::Data && self.size == 0 {
            self.state = State::DataCr;
        }
        Ok((i, None))
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends a chunk-size line for `len` bytes of data (`len` > 0).
pub fn write_chunk_size(buf: &mut BytesMut, len: usize) {
    let mut tmp = [0u8; 16];
    let mut i = tmp.len();
    let mut n = len;
    loop {
        i -= 1;
        tmp[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf.reserve(18);
    buf.put_slice(&tmp[i..]);
    buf.put_slice(b"\r\n");
}

/// Appends one whole chunk. Empty data writes nothing (a zero-size chunk
/// would end the body).
pub fn write_chunk(buf: &mut BytesMut, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    write_chunk_size(buf, data.len());
    buf.extend_from_slice(data);
    buf.put_slice(b"\r\n");
}

/// Appends the last chunk and the trailer section.
///
/// # Errors
/// A trailer field is invalid; nothing is written then.
pub fn write_last_chunk(
    buf: &mut BytesMut,
    trailers: &[(&str, &str)],
) -> Result<(), crate::error::Error> {
    for (n, v) in trailers {
        super::head::check_name(n)?;
        super::head::check_value(v.as_bytes())?;
    }
    buf.put_slice(b"0\r\n");
    for (n, v) in trailers {
        super::head::write_header(buf, n, v.as_bytes())?;
    }
    buf.put_slice(b"\r\n");
    Ok(())
}

/// Decodes a complete chunked body in one go (for tests and small
/// bodies): the data and the trailers.
///
/// # Errors
/// Malformed framing, or [`ProtocolError::Truncated`] if `input` ends
/// early.
pub fn decode_all(
    input: &[u8],
    limits: ChunkedLimits,
) -> Result<(Bytes, Headers, usize), ProtocolError> {
    let mut d = ChunkedDecoder::new(limits);
    let mut out = BytesMut::new();
    let mut pos = 0;
    loop {
        let (n, item) = d.decode(&input[pos..])?;
        match item {
            Some(Chunk::Data { start, end }) => {
                out.extend_from_slice(&input[pos + start..pos + end])
            }
            Some(Chunk::End { trailers }) => return Ok((out.freeze(), trailers, pos + n)),
            None if n == 0 => return Err(ProtocolError::Truncated),
            None => {}
        }
        pos += n;
    }
}
