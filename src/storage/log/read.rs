//! Reads: whole stored batches by offset, from the tail cache, the read-ahead or one direct
//! read of the segment file; and the search for the first offset at a timestamp.

use std::rc::Rc;

use bytes::Bytes;

use super::{PartitionLog, ReadBatches};
use crate::limits::MAX_READ_BYTES;
use crate::storage::batch::{iter_batches, BatchHeader};
use crate::storage::error::{Result, StorageError};
use crate::storage::segment::Segment;

/// Smallest read issued against a segment file, so small fetches still read ahead.
const MIN_READ_BYTES: usize = 64 * 1024;

/// The offset after `read`'s batches if it holds batches and none has a record.
fn only_empty_batches(read: &ReadBatches) -> Option<i64> {
    let mut next = None;
    for c in &read.chunks {
        for (_, h) in iter_batches(c) {
            if h.record_count != 0 {
                return None;
            }
            next = Some(h.next_offset());
        }
    }
    next
}

impl PartitionLog {
    /// Reads whole batches starting with the one that holds `offset`, at most `max_bytes`
    /// (but always at least one batch), never at or beyond `upto` (the high watermark or the
    /// last stable offset). An offset below the log start or above the log end is out of range.
    ///
    /// A sealed segment the cleaner compacted may end before the next one starts: an offset in
    /// such a gap reads from the next segment on, as Kafka does.
    pub async fn read(&self, offset: i64, max_bytes: usize, upto: i64) -> Result<ReadBatches> {
        {
            let st = self.state.borrow();
            let end = st.log_end();
            if offset < st.log_start || offset > end {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    log_start: st.log_start,
                    log_end: end,
                });
            }
        }
        let mut at = offset;
        let mut out = ReadBatches::default();
        loop {
            if let Some(read) = self.read_segment(at, max_bytes, upto).await? {
                // Only empty batches (a producer's last, kept by the cleaner): read on, so an
                // answer never holds nothing but those while records follow (librdkafka takes
                // such an answer for a message too large for its buffer, and doubles it).
                let next = only_empty_batches(&read);
                out.chunks.extend(read.chunks);
                match next {
                    Some(next) if next < upto => {
                        at = next;
                        continue;
                    }
                    _ => return Ok(out),
                }
            }
            // Nothing at or after `at` in its segment: the next segment, if any below `upto`.
            let next = {
                let st = self.state.borrow();
                st.segments
                    .range(at + 1..)
                    .next()
                    .map(|(base, _)| *base)
                    .filter(|base| *base < upto.min(st.log_end()))
            };
            match next {
                Some(base) => at = base,
                None => return Ok(out),
            }
        }
    }

    /// [`Self::read`] within the segment holding `offset`; `None` when that segment has
    /// nothing at or after it.
    async fn read_segment(
        &self,
        offset: i64,
        max_bytes: usize,
        upto: i64,
    ) -> Result<Option<ReadBatches>> {
        let (segment, file, pos, readable) = {
            let st = self.state.borrow();
            let end = st.log_end();
            if offset >= upto.min(end) {
                return Ok(Some(ReadBatches::default()));
            }
            if let Some(chunks) = st.tail.read(offset, upto, max_bytes) {
                return Ok(Some(ReadBatches { chunks }));
            }
            let Some((_, seg)) = st.segments.range(..=offset).next_back() else {
                return Ok(Some(ReadBatches::default()));
            };
            (
                seg.base_offset,
                seg.file(),
                seg.position_for(offset),
                seg.written(),
            )
        };
        if pos >= readable {
            return Ok(None);
        }
        let mut want = max_bytes
            .clamp(MIN_READ_BYTES, MAX_READ_BYTES)
            .min((readable - pos) as usize);
        // The bytes read ahead serve when they hold the whole stretch wanted (or up to the
        // written end); a read ahead in flight for it is waited for rather than repeated.
        // Windows are the file's: a window read from a file the cleaner has since replaced
        // under this base (a read in flight across the swap) is never taken for this one's.
        let enough = |b: &Bytes| b.len() >= want;
        let mut ahead = self.read_ahead.get(segment, &file, pos).filter(enough);
        if ahead.is_none() && self.read_ahead.wait_for(segment, &file, pos).await {
            ahead = self.read_ahead.get(segment, &file, pos).filter(enough);
        }
        loop {
            let buf = match ahead.take() {
                Some(b) => b,
                None => {
                    self.disk_reads.set(self.disk_reads.get() + 1);
                    let buf = Segment::read(file.clone(), pos, want).await?;
                    self.read_ahead.keep(segment, &file, pos, buf.clone());
                    buf
                }
            };
            // The wanted batches are contiguous in `buf`: return them as one slice.
            let mut range: Option<(usize, usize)> = None;
            let mut next_offset = offset;
            let mut parsed_to = 0usize;
            for (at, h) in iter_batches(&buf) {
                parsed_to = at + h.total_size();
                if h.next_offset() <= offset {
                    continue;
                }
                let (from, to) = range.unwrap_or((at, at));
                if h.base_offset >= upto || (to > from && to - from + h.total_size() > max_bytes) {
                    break;
                }
                range = Some((from, at + h.total_size()));
                next_offset = h.next_offset();
            }
            if let Some((from, to)) = range {
                // A consumer reading in order asks for `next_offset` next, from the position
                // the index gives for it: read from there now. Only while the segment still
                // has this file: the index of a file swapped in meanwhile points into that one.
                if pos + (to as u64) < readable {
                    let next = self
                        .state
                        .borrow()
                        .segments
                        .get(&segment)
                        .filter(|s| Rc::ptr_eq(&s.file(), &file))
                        .map(|s| s.position_for(next_offset));
                    if let Some(next) = next.filter(|n| *n < readable) {
                        let len = want.min((readable - next) as usize);
                        self.read_ahead.start(segment, file, next, len);
                    }
                }
                return Ok(Some(ReadBatches {
                    chunks: vec![buf.slice(from..to)],
                }));
            }
            // The batch holding `offset` did not fit in the read: read again, big enough for it.
            let need = BatchHeader::parse(&buf[parsed_to.min(buf.len())..])
                .map(|h| parsed_to + h.total_size());
            match need {
                Some(need)
                    if need > want
                        && pos + need as u64 <= readable
                        && need <= 2 * MAX_READ_BYTES =>
                {
                    want = need
                }
                // The read reached the written end of the segment with nothing for `offset`.
                None if pos + parsed_to as u64 >= readable => return Ok(None),
                _ => return Ok(Some(ReadBatches::default())),
            }
        }
    }

    /// The first offset below `upto` whose record timestamp is ≥ `ts`, with that timestamp;
    /// `None` if no record is that recent (Kafka then answers offset -1).
    pub async fn offset_for_timestamp(&self, ts: i64, upto: i64) -> Result<Option<(i64, i64)>> {
        let start = {
            let st = self.state.borrow();
            let Some(seg) = st.segments.values().find(|s| s.max_timestamp() >= ts) else {
                return Ok(None);
            };
            seg.offset_for_timestamp(ts).max(st.log_start)
        };
        let mut scan = self.scan(start, upto);
        while let Some(b) = scan.next().await? {
            let Some(h) = BatchHeader::parse(&b) else {
                continue;
            };
            if h.max_timestamp < ts || h.is_control() {
                continue;
            }
            if h.attributes & 0x08 != 0 {
                // LogAppendTime: every record carries the batch's time.
                return Ok(Some((h.base_offset, h.max_timestamp)));
            }
            if h.compression() != 0 {
                // Decompressing client data here could be a decompression bomb: answer with
                // the batch, as precise as the batch index allows.
                return Ok(Some((h.base_offset, h.max_timestamp)));
            }
            let mut bytes = b.clone();
            if let Ok(set) = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes) {
                if let Some(r) = set.records.iter().find(|r| r.timestamp >= ts) {
                    return Ok(Some((r.offset, r.timestamp)));
                }
            }
            return Ok(Some((h.base_offset, h.max_timestamp)));
        }
        Ok(None)
    }

    /// The record with the largest timestamp below `upto` (the first of them, on a tie), with
    /// that timestamp: Kafka's MAX_TIMESTAMP lookup (KIP-734). Segments know their batch with
    /// the largest timestamp (the tail segment, whose best may lie beyond `upto`, is searched
    /// batch by batch below it); in it, an uncompressed batch's records are searched for the exact
    /// offset, a compressed one answers with its last offset (decompressing client data here
    /// could be a decompression bomb), a LogAppendTime one with its first.
    pub async fn offset_of_max_timestamp(&self, upto: i64) -> Result<Option<(i64, i64)>> {
        // (timestamp, offset) of the best batch, and the ranges of segments whose best batch is
        // not readable (beyond `upto` in the tail, or below the log start in the first
        // segment after DeleteRecords), to be searched batch by batch.
        let (mut best, partial) = {
            let st = self.state.borrow();
            let mut best: Option<(i64, i64)> = None;
            let mut partial = Vec::new();
            for s in st.segments.values() {
                let ts = s.max_timestamp();
                if ts < 0 || s.base_offset >= upto || s.next_offset() <= st.log_start {
                    continue;
                }
                let at = s.offset_of_max_timestamp();
                if at >= upto || at < st.log_start {
                    partial.push((s.base_offset.max(st.log_start), s.next_offset().min(upto)));
                } else if best.is_none_or(|(b, _)| ts > b) {
                    best = Some((ts, at));
                }
            }
            (best, partial)
        };
        for (from, to) in partial {
            let mut scan = self.scan(from, to);
            while let Some(b) = scan.next().await? {
                if let Some(h) = BatchHeader::parse(&b) {
                    if h.last_offset() < upto
                        && best.is_none_or(|(t, o)| {
                            h.max_timestamp > t || (h.max_timestamp == t && h.last_offset() < o)
                        })
                    {
                        best = Some((h.max_timestamp, h.last_offset()));
                    }
                }
            }
        }
        let Some((ts, offset)) = best else {
            return Ok(None);
        };
        let read = self.read(offset, 1, upto).await?;
        let Some(b) = read.batches().into_iter().next() else {
            return Ok(Some((offset, ts)));
        };
        let Some(h) = BatchHeader::parse(&b) else {
            return Ok(Some((offset, ts)));
        };
        if h.attributes & 0x08 != 0 {
            return Ok(Some((h.base_offset, h.max_timestamp)));
        }
        if h.compression() != 0 {
            return Ok(Some((h.last_offset(), h.max_timestamp)));
        }
        let mut bytes = b.clone();
        if let Ok(set) = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes) {
            if let Some(r) = set.records.iter().find(|r| r.timestamp == h.max_timestamp) {
                return Ok(Some((r.offset, r.timestamp)));
            }
        }
        Ok(Some((h.last_offset(), h.max_timestamp)))
    }
}
