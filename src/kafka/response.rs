//! A response being encoded: owned bytes for everything the codec writes, except record sets,
//! which are referenced where they already are (a `Bytes` from the log's tail cache or a read)
//! instead of being copied into the response. The socket then writes the parts in order.
//!
//! The codec (`kafka-protocol`) writes record bytes with `put_slice`; a slice that lies inside
//! one of the record sets given to [`ResponseBuf::share`] and is large enough becomes a part of
//! its own, sharing that memory.

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Smaller record sets are cheaper to copy than to send as a separate write.
pub const ZERO_COPY_MIN_BYTES: usize = 16 * 1024;

enum Part {
    Owned(BytesMut),
    Shared(Bytes),
}

#[derive(Default)]
pub struct ResponseBuf {
    parts: Vec<Part>,
    /// Bytes in `parts`.
    done: usize,
    cur: BytesMut,
    shared: Vec<Bytes>,
}

impl ResponseBuf {
    pub fn with_capacity(n: usize) -> Self {
        ResponseBuf {
            cur: BytesMut::with_capacity(n),
            ..Default::default()
        }
    }

    /// Record sets that may be referenced instead of copied.
    pub fn share(&mut self, sets: impl IntoIterator<Item = Bytes>) {
        self.shared
            .extend(sets.into_iter().filter(|b| b.len() >= ZERO_COPY_MIN_BYTES));
    }

    /// Bytes the shared record sets will contribute (not to be reserved).
    pub fn shared_len(&self) -> usize {
        self.shared.iter().map(Bytes::len).sum()
    }

    pub fn reserve(&mut self, n: usize) {
        self.cur.reserve(n);
    }

    /// Length of the whole response so far.
    pub fn len(&self) -> usize {
        self.done + self.cur.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Overwrites the first bytes of the response (the frame length, written last).
    pub fn patch_start(&mut self, bytes: &[u8]) {
        let first = match self.parts.first_mut() {
            Some(Part::Owned(b)) => b,
            Some(Part::Shared(_)) => return,
            None => &mut self.cur,
        };
        if first.len() >= bytes.len() {
            first[..bytes.len()].copy_from_slice(bytes);
        }
    }

    /// The response as parts to write in order.
    pub fn into_parts(mut self) -> Vec<Bytes> {
        self.close_owned();
        self.parts
            .into_iter()
            .map(|p| match p {
                Part::Owned(b) => b.freeze(),
                Part::Shared(b) => b,
            })
            .collect()
    }

    fn close_owned(&mut self) {
        if !self.cur.is_empty() {
            let owned = self.cur.split();
            self.done += owned.len();
            self.parts.push(Part::Owned(owned));
        }
    }

    fn shared_holding(&self, src: &[u8]) -> Option<Bytes> {
        let (start, end) = (src.as_ptr() as usize, src.as_ptr() as usize + src.len());
        self.shared
            .iter()
            .find(|b| {
                let (s, e) = (b.as_ptr() as usize, b.as_ptr() as usize + b.len());
                s <= start && end <= e
            })
            .map(|b| b.slice_ref(src))
    }
}

// SAFETY: every method forwards to the `BytesMut` holding the owned tail, which upholds
// `BufMut`'s contract; `put_slice` only decides whether bytes are copied there or referenced.
unsafe impl BufMut for ResponseBuf {
    fn remaining_mut(&self) -> usize {
        self.cur.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `chunk_mut()`, which is `cur`'s.
        unsafe { self.cur.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.cur.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= ZERO_COPY_MIN_BYTES {
            if let Some(piece) = self.shared_holding(src) {
                self.close_owned();
                self.done += piece.len();
                self.parts.push(Part::Shared(piece));
                return;
            }
        }
        self.cur.extend_from_slice(src);
    }
}

impl ByteBufMut for ResponseBuf {
    fn offset(&self) -> usize {
        self.len()
    }

    /// Gaps (written later) can only be within the owned tail; the codec uses them for record
    /// batches it builds, never around bytes it was given.
    fn seek(&mut self, offset: usize) {
        let local = offset.saturating_sub(self.done);
        assert!(offset >= self.done, "seek before the owned tail");
        self.cur.resize(local, 0);
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        assert!(r.start >= self.done, "range before the owned tail");
        &mut self.cur[r.start - self.done..r.end - self.done]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_shared_record_sets_are_referenced_and_the_rest_copied() {
        let records = Bytes::from(vec![7u8; 64 * 1024]);
        let small = Bytes::from_static(b"tiny records");
        let mut out = ResponseBuf::with_capacity(64);
        out.put_i32(0);
        out.share([records.clone(), small.clone()]);
        out.put_i16(5);
        out.put_slice(&records[100..]);
        out.put_slice(&small);
        out.put_i32(9);
        let total = out.len();
        out.patch_start(&((total - 4) as i32).to_be_bytes());
        let parts = out.into_parts();
        assert_eq!(parts.len(), 3, "header, shared records, copied tail");
        assert_eq!(
            parts[1].as_ptr(),
            records[100..].as_ptr(),
            "the record set is shared, not copied"
        );
        let joined: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(joined.len(), total);
        assert_eq!(&joined[..4], &((total - 4) as i32).to_be_bytes());
        assert_eq!(&joined[4..6], &5i16.to_be_bytes());
        assert_eq!(&joined[6..6 + records.len() - 100], &records[100..]);
    }
}
