//! The hot tail of a partition: the most recent batches, kept in memory exactly as stored, so
//! that tailing consumers are served without touching the disk. A batch leaves the cache only
//! once it is on disk, so every offset is always readable from one place or the other.

use std::collections::VecDeque;

use bytes::Bytes;

/// One cached batch: offsets `[base, next)`.
#[derive(Debug, Clone)]
pub struct CachedBatch {
    pub base: i64,
    pub next: i64,
    pub bytes: Bytes,
}

#[derive(Debug, Default)]
pub struct TailCache {
    batches: VecDeque<CachedBatch>,
    bytes: usize,
    limit: usize,
}

impl TailCache {
    pub fn new(limit: usize) -> Self {
        TailCache {
            batches: VecDeque::new(),
            bytes: 0,
            limit,
        }
    }

    pub fn push(&mut self, batch: CachedBatch) {
        debug_assert!(
            self.batches.back().is_none_or(|b| b.next == batch.base),
            "cache must stay dense"
        );
        self.bytes += batch.bytes.len();
        self.batches.push_back(batch);
    }

    /// Drops the oldest batches over the size limit, but only those below `on_disk` (offsets
    /// that a read can find in a segment file).
    pub fn evict(&mut self, on_disk: i64) {
        while self.bytes > self.limit {
            match self.batches.front() {
                Some(b) if b.next <= on_disk => {
                    self.bytes -= b.bytes.len();
                    self.batches.pop_front();
                }
                _ => break,
            }
        }
    }

    /// Drops everything below `offset` (retention) or at and above it (truncation).
    pub fn retain_from(&mut self, offset: i64) {
        while self.batches.front().is_some_and(|b| b.next <= offset) {
            if let Some(b) = self.batches.pop_front() {
                self.bytes -= b.bytes.len();
            }
        }
    }

    pub fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
    }

    /// Whole batches starting with the one holding `offset`, below `upto`, within `max_bytes`
    /// (the first batch is returned even if larger, as Kafka does so consumers progress).
    /// `None` if `offset` is older than the cache.
    pub fn read(&self, offset: i64, upto: i64, max_bytes: usize) -> Option<Vec<Bytes>> {
        let first = self.batches.front()?;
        if offset < first.base {
            return None;
        }
        let start = self.batches.partition_point(|b| b.next <= offset);
        let mut out = Vec::new();
        let mut total = 0usize;
        for b in self.batches.range(start..) {
            if b.base >= upto || (!out.is_empty() && total + b.bytes.len() > max_bytes) {
                break;
            }
            total += b.bytes.len();
            out.push(b.bytes.clone());
        }
        Some(out)
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}
