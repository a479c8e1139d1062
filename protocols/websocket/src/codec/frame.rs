//! The RFC 6455 §5.2 frame header and masking (§5.3).
//!
//! ```text
//!  0               1               2               3
//!  FIN RSV1-3 opcode | MASK len7 | [len16 | len64] | [masking key]
//! ```
//!
//! [`parse_header`] reads a complete header from the front of a slice
//! (`Ok(None)` while it is incomplete, so a caller with a partial header
//! buffers at most [`MAX_HEADER`] bytes); [`write_header`] always uses the
//! shortest length encoding.

use bytes::{BufMut, BytesMut};

use crate::error::ProtocolError;

/// The longest header: 2 + 8 (64-bit length) + 4 (masking key).
pub const MAX_HEADER: usize = 14;

/// Largest payload of a control frame (§5.5).
pub const MAX_CONTROL: usize = 125;

/// A frame's opcode (§5.2). Reserved opcodes never become an `OpCode`:
/// [`parse_header`] rejects them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// Continues a fragmented message.
    Continuation,
    /// Starts a text message.
    Text,
    /// Starts a binary message.
    Binary,
    /// Close (control).
    Close,
    /// Ping (control).
    Ping,
    /// Pong (control).
    Pong,
}

impl OpCode {
    /// From the 4-bit wire value; `None` for the reserved 3–7 and 0xB–0xF.
    pub const fn from_u8(v: u8) -> Option<OpCode> {
        Some(match v {
            0 => OpCode::Continuation,
            1 => OpCode::Text,
            2 => OpCode::Binary,
            8 => OpCode::Close,
            9 => OpCode::Ping,
            10 => OpCode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit wire value.
    pub const fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0,
            OpCode::Text => 1,
            OpCode::Binary => 2,
            OpCode::Close => 8,
            OpCode::Ping => 9,
            OpCode::Pong => 10,
        }
    }

    /// Close, ping and pong.
    pub const fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Final fragment of its message.
    pub fin: bool,
    /// The three reserved bits, RSV1 as 0b100 (permessage-deflate's bit).
    pub rsv: u8,
    /// What the frame is.
    pub opcode: OpCode,
    /// The masking key, if the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// Payload length.
    pub len: u64,
}

/// RSV1: "this message is compressed" under permessage-deflate.
pub const RSV1: u8 = 0b100;

/// Parses the header at the front of `b`: `Ok(Some((header, header_len)))`,
/// `Ok(None)` if `b` holds only part of it, or the violation. Control frames
/// are checked here (≤ 125 bytes, not fragmented); reserved bits and masking
/// depend on the connection and are the caller's to check.
pub fn parse_header(b: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    let (Some(&b0), Some(&b1)) = (b.first(), b.get(1)) else {
        return Ok(None);
    };
    let opcode = OpCode::from_u8(b0 & 0x0f).ok_or(ProtocolError::ReservedOpcode(b0 & 0x0f))?;
    let fin = b0 & 0x80 != 0;
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7f;
    if opcode.is_control() {
        if !fin {
            return Err(ProtocolError::FragmentedControl);
        }
        if usize::from(len7) > MAX_CONTROL {
            return Err(ProtocolError::ControlTooLong);
        }
    }
    let ext = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let need = 2 + ext + if masked { 4 } else { 0 };
    let Some(rest) = b.get(2..need) else {
        return Ok(None);
    };
    let (len_bytes, key_bytes) = rest.split_at(ext);
    let len = match *len_bytes {
        [a, b] => u64::from(u16::from_be_bytes([a, b])),
        [a, b, c, d, e, f, g, h] => {
            let v = u64::from_be_bytes([a, b, c, d, e, f, g, h]);
            // §5.2: the most significant bit MUST be 0.
            if v >> 63 != 0 {
                return Err(ProtocolError::LengthOverflow);
            }
            v
        }
        _ => u64::from(len7),
    };
    let mask = match *key_bytes {
        [a, b, c, d] => Some([a, b, c, d]),
        _ => None,
    };
    let header = FrameHeader {
        fin,
        rsv: (b0 >> 4) & 0b111,
        opcode,
        mask,
        len,
    };
    Ok(Some((header, need)))
}

/// Appends a header to `buf` with the minimal length encoding (§5.2).
pub fn write_header(buf: &mut BytesMut, h: &FrameHeader) {
    let b0 = (u8::from(h.fin) << 7) | ((h.rsv & 0b111) << 4) | h.opcode.as_u8();
    let m = if h.mask.is_some() { 0x80 } else { 0 };
    buf.reserve(MAX_HEADER);
    buf.put_u8(b0);
    match h.len {
        0..=125 => buf.put_u8(m | h.len as u8),
        126..=0xffff => {
            buf.put_u8(m | 126);
            buf.put_u16(h.len as u16);
        }
        _ => {
            buf.put_u8(m | 127);
            buf.put_u64(h.len);
        }
    }
    if let Some(k) = h.mask {
        buf.put_slice(&k);
    }
}

/// XORs `data` with `key`, as if `data` started `offset` bytes into the
/// payload (so a payload unmasked in pieces gives the same bytes). Works
/// eight bytes at a time.
#[inline]
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    // The key as it lines up with data[0]: its bytes rotated by the
    // offset, done on the key as a word.
    let shift = 8 * (offset % 4) as u32;
    let k32 = u32::from_ne_bytes(key);
    let k32 = if cfg!(target_endian = "little") {
        k32.rotate_right(shift)
    } else {
        k32.rotate_left(shift)
    };
    let k = k32.to_ne_bytes();
    let word = u64::from(k32) | (u64::from(k32) << 32);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ word).to_ne_bytes());
    }
    // Fewer than 8 left, starting at a multiple of 8: the key's phase is
    // still `k`.
    let rest = chunks.into_remainder();
    let (four, tail) = if rest.len() >= 4 {
        rest.split_at_mut(4)
    } else {
        rest.split_at_mut(0)
    };
    if let Ok(w) = <&mut [u8; 4]>::try_from(four) {
        *w = (u32::from_ne_bytes(*w) ^ k32).to_ne_bytes();
    }
    for (b, m) in tail.iter_mut().zip(k) {
        *b ^= m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(opcode: OpCode, len: u64, mask: Option<[u8; 4]>) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask,
            len,
        }
    }

    #[test]
    fn minimal_lengths_round_trip() {
        for (len, size) in [
            (0, 2),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (1 << 40, 10),
        ] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let h = hdr(OpCode::Binary, len, mask);
                let mut b = BytesMut::new();
                write_header(&mut b, &h);
                let want = size + if mask.is_some() { 4 } else { 0 };
                assert_eq!(b.len(), want, "len {len}");
                assert_eq!(parse_header(&b).unwrap(), Some((h, want)));
                for cut in 0..want {
                    assert_eq!(parse_header(&b[..cut]).unwrap(), None);
                }
            }
        }
    }

    #[test]
    fn rejects_reserved_and_bad_control() {
        for op in [3u8, 7, 0xb, 0xf] {
            assert_eq!(
                parse_header(&[0x80 | op, 0]),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
        assert_eq!(
            parse_header(&[0x09, 0]),
            Err(ProtocolError::FragmentedControl)
        );
        assert_eq!(
            parse_header(&[0x89, 126]),
            Err(ProtocolError::ControlTooLong)
        );
        let mut b = vec![0x82, 127];
        b.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(parse_header(&b), Err(ProtocolError::LengthOverflow));
    }

    #[test]
    fn mask_in_pieces_equals_whole() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for cut in 0..data.len() {
            let mut parts = data.clone();
            let (a, b) = parts.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            assert_eq!(parts, whole);
        }
        let bytewise: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(whole, bytewise);
    }
}
