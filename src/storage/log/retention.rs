//! Removing old data: whole sealed segments past a time or size limit go, oldest first, and
//! the log start moves up to the first segment left; or the log start is moved to a given
//! offset (DeleteRecords) and the segments wholly below it go. Either way the new log start is
//! recorded in `partition.meta` before any file is deleted, so a crash in between finishes the
//! deletion on the next open.

use super::PartitionLog;
use crate::storage::error::{Result, StorageError};
use crate::storage::segment::Segment;

/// How much of a log time and size retention keep; a negative bound is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionLimits {
    /// `retention.ms`: a sealed segment whose newest record is older goes.
    pub ms: i64,
    /// `retention.bytes`: the oldest segments go while the log is larger.
    pub bytes: i64,
}

impl PartitionLog {
    /// Deletes whole sealed segments older than `limits.ms` (by their largest timestamp) or
    /// beyond `limits.bytes`, oldest first, and advances the log start. Returns the segments
    /// deleted. Whether a topic's segments may be deleted at all is its cleanup policy, which
    /// the caller applies.
    pub async fn enforce_retention(&self, limits: RetentionLimits) -> Result<usize> {
        let _permit = self.io_permit().await?;
        let now = self.clock.now_ms();
        let RetentionLimits {
            ms: retention_ms,
            bytes: retention_bytes,
        } = limits;
        let doomed: Vec<Segment> = {
            let mut st = self.state.borrow_mut();
            let mut size = st.size_bytes() as i64;
            let mut doomed_bases = Vec::new();
            let sealed: Vec<(i64, u64, i64)> = st
                .segments
                .values()
                .filter(|s| !s.is_active())
                .map(|s| (s.base_offset, s.size(), s.max_timestamp()))
                .collect();
            for (base, seg_size, max_ts) in sealed {
                let by_time =
                    retention_ms >= 0 && max_ts >= 0 && now.saturating_sub(max_ts) > retention_ms;
                let by_size = retention_bytes >= 0 && size - seg_size as i64 >= retention_bytes;
                if !(by_time || by_size) {
                    break;
                }
                size -= seg_size as i64;
                doomed_bases.push(base);
            }
            let doomed: Vec<Segment> = doomed_bases
                .iter()
                .filter_map(|b| st.segments.remove(b))
                .collect();
            if !doomed.is_empty() {
                let first = *st.segments.keys().next().expect("active remains");
                st.log_start = st.log_start.max(first);
                let start = st.log_start;
                st.tail.retain_from(start);
            }
            doomed
        };
        if doomed.is_empty() {
            return Ok(0);
        }
        // Meta first: a crash after it finishes the deletion on the next open.
        self.store_meta().await?;
        for seg in &doomed {
            tracing::info!(dir = %self.dir.display(), segment = seg.base_offset, "retention deleted segment");
            seg.remove_files(&self.dir)?;
        }
        Ok(doomed.len())
    }
}

impl PartitionLog {
    /// Moves the log start up to `offset` (DeleteRecords): records below it are no longer
    /// readable, and sealed segments that lie wholly below it are deleted, as retention
    /// deletes them. The new log start is recorded in `partition.meta` before any file goes,
    /// so a crash in between finishes the deletion on the next open (see `recover`). An
    /// offset at or below the current log start changes nothing; one beyond the log end is
    /// out of range (which offsets a caller may pass, e.g. none above the high watermark, is
    /// the caller's rule). Returns the log start after the call.
    pub async fn advance_log_start(&self, offset: i64) -> Result<i64> {
        let _permit = self.io_permit().await?;
        let doomed: Vec<Segment> = {
            let mut st = self.state.borrow_mut();
            let end = st.log_end();
            if offset > end {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    log_start: st.log_start,
                    log_end: end,
                });
            }
            if offset <= st.log_start {
                return Ok(st.log_start);
            }
            st.log_start = offset;
            st.tail.retain_from(offset);
            // A sealed segment is wholly below `offset` when the next one starts at or below it.
            let bases: Vec<i64> = st.segments.keys().copied().collect();
            let doomed_bases: Vec<i64> = bases
                .windows(2)
                .take_while(|w| w[1] <= offset)
                .map(|w| w[0])
                .collect();
            doomed_bases
                .iter()
                .filter_map(|b| st.segments.remove(b))
                .collect()
        };
        // Meta first: a crash after it finishes the deletion on the next open.
        self.store_meta().await?;
        for seg in &doomed {
            tracing::info!(dir = %self.dir.display(), segment = seg.base_offset, log_start = offset, "deleted records: removed segment");
            seg.remove_files(&self.dir)?;
        }
        Ok(offset)
    }
}
