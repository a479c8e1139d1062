//! A socket's write queue.
//!
//! Most drains leave one chunk per socket (a reply, or a pipelined batch
//! of them) that is written whole at once, so that one chunk lives inline:
//! no allocation per reply, and nothing allocated while the connection is
//! idle. Only a second chunk waiting behind the first moves the queue to
//! the heap, and the heap is given back as soon as it drains. A partly
//! written chunk is trimmed in place (`Bytes` slices without copying), so
//! no offset into the front chunk is kept beside it.

use std::collections::VecDeque;

use crate::Chunk;
use bytes::Buf;

/// Chunks to write, in order. Never holds an empty `Many`.
#[derive(Debug, Default)]
pub enum WriteQueue {
    /// Nothing to write.
    #[default]
    Empty,
    /// One chunk, inline.
    One(Chunk),
    /// Two chunks or more.
    Many(VecDeque<Chunk>),
}

impl WriteQueue {
    /// Whether nothing waits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        matches!(self, WriteQueue::Empty)
    }

    /// The chunk written next.
    #[inline]
    pub fn front(&self) -> Option<&Chunk> {
        match self {
            WriteQueue::Empty => None,
            WriteQueue::One(c) => Some(c),
            WriteQueue::Many(q) => q.front(),
        }
    }

    /// The `i`th chunk.
    pub fn get(&self, i: usize) -> Option<&Chunk> {
        match self {
            WriteQueue::Empty => None,
            WriteQueue::One(c) => (i == 0).then_some(c),
            WriteQueue::Many(q) => q.get(i),
        }
    }

    /// The chunks, front first.
    pub fn iter(&self) -> impl Iterator<Item = &Chunk> {
        let (one, many) = match self {
            WriteQueue::Empty => (None, None),
            WriteQueue::One(c) => (Some(c), None),
            WriteQueue::Many(q) => (None, Some(q.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    /// Appends `chunk`.
    #[inline]
    pub fn push(&mut self, chunk: Chunk) {
        match self {
            WriteQueue::Empty => *self = WriteQueue::One(chunk),
            WriteQueue::Many(q) => q.push_back(chunk),
            WriteQueue::One(_) => self.spill(chunk),
        }
    }

    /// A second chunk: to the heap.
    #[cold]
    fn spill(&mut self, chunk: Chunk) {
        if let WriteQueue::One(first) = std::mem::take(self) {
            let mut q = VecDeque::with_capacity(4);
            q.push_back(first);
            q.push_back(chunk);
            *self = WriteQueue::Many(q);
        }
    }

    /// Drops the `n` bytes written from the front: whole chunks go (the
    /// heap with the last one), a partly written one keeps its rest.
    #[inline]
    pub fn consume(&mut self, n: u64) {
        match self {
            // The usual case: the one chunk went whole.
            WriteQueue::One(c) if n >= c.len() => *self = WriteQueue::Empty,
            _ => self.consume_slow(n),
        }
    }

    fn consume_slow(&mut self, mut n: u64) {
        while n > 0 {
            let front = match self {
                WriteQueue::Empty => return,
                WriteQueue::One(c) => c,
                WriteQueue::Many(q) => match q.front_mut() {
                    Some(c) => c,
                    None => return,
                },
            };
            let len = front.len();
            if n >= len {
                n -= len;
                self.pop_front();
                continue;
            }
            match front {
                // `n < len` here, so it fits a usize.
                Chunk::Bytes(b) => b.advance(usize::try_from(n).unwrap_or(b.len())),
                Chunk::File { offset, len, .. } => {
                    *offset += n;
                    *len -= n;
                }
            }
            return;
        }
    }

    /// Drops the front chunk (the heap goes with the last one).
    fn pop_front(&mut self) {
        match self {
            WriteQueue::Empty => {}
            WriteQueue::One(_) => *self = WriteQueue::Empty,
            WriteQueue::Many(q) => {
                q.pop_front();
                if q.is_empty() {
                    *self = WriteQueue::Empty;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn chunk(s: &'static str) -> Chunk {
        Chunk::Bytes(Bytes::from_static(s.as_bytes()))
    }

    fn contents(q: &WriteQueue) -> Vec<u64> {
        q.iter().map(Chunk::len).collect()
    }

    #[test]
    fn keeps_order_and_frees_when_drained() {
        let mut q = WriteQueue::default();
        assert!(q.is_empty() && q.front().is_none());
        q.push(chunk("a"));
        assert!(matches!(q, WriteQueue::One(_)));
        q.push(chunk("bb"));
        q.push(chunk("ccc"));
        assert_eq!(contents(&q), [1, 2, 3]);
        assert_eq!(q.get(1).map(Chunk::len), Some(2));
        assert_eq!(q.get(3).map(Chunk::len), None);
        q.consume(1);
        assert_eq!(q.front().map(Chunk::len), Some(2));
        q.consume(5);
        assert!(matches!(q, WriteQueue::Empty));
        q.consume(1);
        assert!(q.is_empty());
        q.push(chunk("dddd"));
        assert_eq!(contents(&q), [4]);
        assert_eq!(q.get(0).map(Chunk::len), Some(4));
        assert!(q.get(1).is_none());
        q.consume(4);
        assert!(q.is_empty());
    }

    #[test]
    fn trims_a_partly_written_front() {
        let mut q = WriteQueue::default();
        q.push(chunk("hello"));
        q.consume(2);
        assert!(matches!(q.front(), Some(Chunk::Bytes(b)) if b == "llo"));
        q.push(chunk("world"));
        q.push(Chunk::File {
            file: std::sync::Arc::new(tempfile()),
            offset: 10,
            len: 100,
        });
        // The rest of "llo", all of "world" and 7 bytes of the file.
        q.consume(3 + 5 + 7);
        assert!(matches!(
            q.front(),
            Some(Chunk::File {
                offset: 17,
                len: 93,
                ..
            })
        ));
        q.consume(93);
        assert!(matches!(q, WriteQueue::Empty));
    }

    fn tempfile() -> std::fs::File {
        let path = std::env::temp_dir().join(format!("twill-driver-queue-{}", std::process::id()));
        let f = std::fs::File::create(&path).expect("a temporary file");
        let _ = std::fs::remove_file(&path);
        f
    }
}
