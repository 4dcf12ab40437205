//! The one iterator over every stored batch of an offset range, read in large steps: what
//! rebuilding producer state, loading consumer groups and searching by timestamp all walk.

use std::collections::VecDeque;

use bytes::Bytes;

use super::PartitionLog;
use crate::limits::SCAN_READ_BYTES;
use crate::storage::batch::BatchHeader;
use crate::storage::error::Result;

/// Whole batches from an offset up to a bound, in order, each once. Borrows the log; the reads
/// are the log's own (tail cache, read-ahead, direct reads).
pub struct LogScan<'a> {
    log: &'a PartitionLog,
    /// The first offset not yet handed out.
    next: i64,
    upto: i64,
    /// Bytes asked for per read.
    step: usize,
    ready: VecDeque<Bytes>,
}

impl PartitionLog {
    /// Every batch holding an offset in `from..upto`, starting with the one that holds `from`.
    pub fn scan(&self, from: i64, upto: i64) -> LogScan<'_> {
        self.scan_by(from, upto, SCAN_READ_BYTES)
    }

    /// [`Self::scan`] reading about `step` bytes at a time (the cleaner's smaller steps keep
    /// each read's copy short, see `limits::CLEANER_READ_BYTES`).
    pub fn scan_by(&self, from: i64, upto: i64, step: usize) -> LogScan<'_> {
        LogScan {
            log: self,
            next: from,
            upto,
            step,
            ready: VecDeque::new(),
        }
    }
}

impl LogScan<'_> {
    /// The next whole batch, or `None` at the bound (or where the log has nothing more).
    pub async fn next(&mut self) -> Result<Option<Bytes>> {
        loop {
            if let Some(b) = self.ready.pop_front() {
                return Ok(Some(b));
            }
            if self.next >= self.upto {
                return Ok(None);
            }
            let read = self.log.read(self.next, self.step, self.upto).await?;
            for b in read.batches() {
                if let Some(h) = BatchHeader::parse(&b) {
                    if h.next_offset() > self.next {
                        self.next = h.next_offset();
                        self.ready.push_back(b);
                    }
                }
            }
            if self.ready.is_empty() {
                return Ok(None); // no progress: nothing readable below the bound
            }
        }
    }

    /// The first offset after the batches handed out so far.
    pub fn position(&self) -> i64 {
        self.next
    }
}
