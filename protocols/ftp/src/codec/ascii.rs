//! TYPE A (RFC 959 §3.1.1.1): the network form of text ends lines with
//! CRLF. Sending converts a bare LF to CRLF; receiving turns CRLF back
//! into LF. Both are streaming (a CR at the end of one chunk and the LF at
//! the start of the next are still one line end).

use bytes::{BufMut, Bytes, BytesMut};

/// Local text → network text: LF not preceded by CR becomes CRLF.
#[derive(Clone, Copy, Debug, Default)]
pub struct ToNetwork {
    last_cr: bool,
}

impl ToNetwork {
    /// Converts one chunk.
    pub fn convert(&mut self, data: &[u8]) -> Bytes {
        if memchr::memchr(b'\n', data).is_none() {
            self.last_cr = data.last().map_or(self.last_cr, |&b| b == b'\r');
            return Bytes::copy_from_slice(data);
        }
        let mut out = BytesMut::with_capacity(data.len() + data.len() / 16 + 1);
        let mut start = 0;
        for i in memchr::memchr_iter(b'\n', data) {
            let prev_cr = if i == 0 {
                self.last_cr
            } else {
                data[i - 1] == b'\r'
            };
            out.put_slice(&data[start..i]);
            if !prev_cr {
                out.put_u8(b'\r');
            }
            out.put_u8(b'\n');
            start = i + 1;
        }
        out.put_slice(&data[start..]);
        self.last_cr = data.last() == Some(&b'\r');
        out.freeze()
    }
}

/// Network text → local text: CRLF becomes LF; a CR not followed by LF
/// stays.
#[derive(Clone, Copy, Debug, Default)]
pub struct FromNetwork {
    pending_cr: bool,
}

impl FromNetwork {
    /// Converts one chunk. A CR at its end is held until the next chunk
    /// (or [`finish`](Self::finish)) shows what follows it.
    pub fn convert(&mut self, data: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(data.len() + 1);
        let mut rest = data;
        if self.pending_cr {
            self.pending_cr = false;
            if rest.first() != Some(&b'\n') {
                out.put_u8(b'\r');
            }
        }
        while let Some(i) = memchr::memchr(b'\r', rest) {
            out.put_slice(&rest[..i]);
            match rest.get(i + 1) {
                Some(b'\n') => {}
                Some(_) => out.put_u8(b'\r'),
                None => self.pending_cr = true,
            }
            rest = &rest[i + 1..];
        }
        out.put_slice(rest);
        out.freeze()
    }

    /// The end of the data: a held CR was not a line end.
    pub fn finish(&mut self) -> Bytes {
        if core::mem::take(&mut self.pending_cr) {
            Bytes::from_static(b"\r")
        } else {
            Bytes::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_network_any_split() {
        let text = b"a\nb\r\nc\n\nd\r";
        let want = b"a\r\nb\r\nc\r\n\r\nd\r";
        for split in 0..=text.len() {
            let mut c = ToNetwork::default();
            let mut out = c.convert(&text[..split]).to_vec();
            out.extend_from_slice(&c.convert(&text[split..]));
            assert_eq!(out, want, "split at {split}");
        }
    }

    #[test]
    fn from_network_any_split() {
        let wire = b"a\r\nb\rc\r\n\r\nd\r";
        let want = b"a\nb\rc\n\nd\r";
        for split in 0..=wire.len() {
            let mut c = FromNetwork::default();
            let mut out = c.convert(&wire[..split]).to_vec();
            out.extend_from_slice(&c.convert(&wire[split..]));
            out.extend_from_slice(&c.finish());
            assert_eq!(out, want, "split at {split}");
        }
    }
}
