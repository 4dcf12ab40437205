//! Cutting the tail of a log: the batches at and above an offset go (a replica gives up the
//! uncommitted entries a new leader does not have).
//!
//! Everything appended is written and synced first, so the cut applies to files alone. The
//! segments wholly above the offset are deleted; the one holding it is cut at the batch
//! boundary, synced, and reopened as the active segment (a scan rebuilds its indexes). A
//! crash in the middle leaves a log that recovery reads as a prefix of the old one (the
//! later segments go first), which the caller's own index cuts to agree with.

use super::PartitionLog;
use crate::storage::batch::{BatchHeader, HEADER_BYTES};
use crate::storage::error::{Result, StorageError};
use crate::storage::segment::Segment;

impl PartitionLog {
    /// Drops every batch at or above `offset`, which must be a batch boundary between the
    /// log start and the log end. Afterwards the log ends at `offset`.
    pub async fn truncate_from(&self, offset: i64) -> Result<()> {
        self.check_writable()?;
        let end = self.log_end();
        if offset >= end {
            return Ok(());
        }
        self.flush(end).await?;
        let _permit = self.io_permit().await?;
        let (doomed, holder) = {
            let mut st = self.state.borrow_mut();
            if offset < st.log_start {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    log_start: st.log_start,
                    log_end: st.log_end(),
                });
            }
            let holder = st
                .segments
                .range(..=offset)
                .next_back()
                .map(|(b, _)| *b)
                .unwrap_or(st.log_start);
            let later: Vec<i64> = st.segments.range(holder + 1..).map(|(b, _)| *b).collect();
            let doomed: Vec<Segment> = later.iter().filter_map(|b| st.segments.remove(b)).collect();
            st.tail.truncate_from(offset);
            // The holder stays in the map until its cut copy replaces it: a log always has an
            // active segment, and readers (bounded by the commit point, below the cut) read on.
            let holder = st.segments.get(&holder).map(|seg| Holder {
                base: seg.base_offset,
                from: seg.position_for(offset),
                size: seg.size(),
                next: seg.next_offset(),
                file: seg.file(),
            });
            (doomed, holder)
        };
        // The latest segments go first: a crash leaves a prefix of the log.
        for seg in doomed.iter().rev() {
            self.read_ahead.forget(seg.base_offset);
            seg.remove_files(&self.dir)?;
        }
        let Some(seg) = holder else {
            return Err(StorageError::Io(std::io::Error::other(
                "truncation found no segment holding the offset",
            )));
        };
        self.read_ahead.forget(seg.base);
        let cut = position_of(&seg, offset).await?;
        let file = seg.file.clone();
        file.truncate(cut).await?;
        file.fdatasync().await?;
        self.syncs.set(self.syncs.get() + 1);
        let base = seg.base;
        drop(seg);
        let interval = self.config.borrow().index_interval_bytes;
        let (seg, scan) =
            match Segment::recover(&self.dir, base, interval, self.clock.now_ms()).await {
                Ok(r) => r,
                Err(e) => {
                    self.failed.set(true);
                    return Err(e);
                }
            };
        if seg.next_offset() != offset && !(seg.next_offset() == base && offset == base) {
            self.failed.set(true);
            return Err(StorageError::Io(std::io::Error::other(format!(
                "truncation to {offset} left the segment ending at {} ({:?})",
                seg.next_offset(),
                scan.problem
            ))));
        }
        {
            let mut st = self.state.borrow_mut();
            st.segments.insert(base, seg);
            st.written_offset = offset;
            st.unflushed_messages = 0;
            st.oldest_unflushed_ms = None;
            debug_assert_eq!(st.log_end(), offset);
        }
        self.flushed.set(offset);
        self.store_meta().await?;
        tracing::info!(dir = %self.dir.display(), offset, "log truncated");
        Ok(())
    }
}

/// What truncation needs of the segment holding the cut, taken out of the log's state so
/// that no borrow is held across the reads.
struct Holder {
    base: i64,
    /// Where the offset index says to start looking for the cut.
    from: u64,
    size: u64,
    next: i64,
    file: std::rc::Rc<glommio::io::DmaFile>,
}

/// Byte position of the batch starting at `offset` in the holder, whose bytes are all on the
/// device: from the offset index's floor entry, batch header by batch header (its end when
/// `offset` is the segment's end).
async fn position_of(seg: &Holder, offset: i64) -> Result<u64> {
    let mut pos = seg.from;
    while pos < seg.size {
        let head = Segment::read(seg.file.clone(), pos, HEADER_BYTES).await?;
        let h = BatchHeader::parse(&head).ok_or_else(|| {
            StorageError::Io(std::io::Error::other(format!(
                "no batch header at position {pos} while truncating"
            )))
        })?;
        if h.base_offset == offset {
            return Ok(pos);
        }
        if h.base_offset > offset || h.next_offset() > offset {
            return Err(StorageError::Io(std::io::Error::other(format!(
                "offset {offset} is inside the batch at {}, not at a boundary",
                h.base_offset
            ))));
        }
        pos += h.total_size() as u64;
    }
    if pos == seg.size && seg.next == offset {
        return Ok(pos);
    }
    Err(StorageError::Io(std::io::Error::other(format!(
        "offset {offset} not found in the segment at {}",
        seg.base
    ))))
}
