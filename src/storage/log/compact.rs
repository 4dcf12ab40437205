//! Cleaning (Kafka's log compaction) of a log's sealed segments: one pass builds a bounded
//! key map over the dirty part of the cleanable range, then rewrites every cleanable segment
//! below the map's end without the records the map shows a newer record for, without
//! keyless records, and without tombstones past the delete horizon written into their batch
//! (KIP-534: a batch whose kept records include a tombstone is stamped, on the first clean
//! that keeps it, with `now + delete.retention.ms`; see `storage::compact::records`; a
//! segment's file times play no part); each rewritten segment is
//! swapped in on its own (see `storage::compact::swap`), and consecutive segments whose sizes
//! add up to at most `segment.bytes` are cleaned into one (small cleaned segments are merged,
//! as Kafka's cleaner does). Offsets never change: each batch keeps
//! its base offset and `lastOffsetDelta`; a batch left with no record goes (so a segment may
//! end before the next one starts: reads go on in the next segment, recovery accepts the gap
//! in a sealed segment read whole), unless it holds the last sequence of an idempotent
//! producer the partition still knows: that one stays as an empty batch (Kafka's
//! `RETAIN_EMPTY`), until the producer writes again. A log larger than
//! the map takes several passes (each call is one pass; the caller keeps the dirty point).
//!
//! Reading and writing run without the log's I/O permit (appends and syncs go on); only the
//! swap of each segment takes it. The cleaned copy is written as appends are, O_DIRECT
//! through io_uring from aligned buffers (`swap::CleanedFile`); files are renamed and
//! deleted on the blocking pool; between two batches the pass gives its core up once it has
//! run for `limits::CLEANER_SLICE` (`compact::Slice`), so it never holds the core for long. Which logs are cleaned, when, and with which limits is the
//! partition's decision.

use std::rc::Rc;

use super::PartitionLog;
use crate::limits::{CLEANER_READ_BYTES, CLEANER_WRITE_BYTES, MAX_SEGMENT_OFFSET_SPAN};
use crate::storage::batch::{BatchHeader, HEADER_BYTES};
use crate::storage::compact::records::{batch_records, empty_batch, rebuild};
use crate::storage::compact::swap::{self, SwapStep};
use crate::storage::compact::{KeyMap, Slice};
use crate::storage::error::{Result, StorageError};
use crate::storage::segment::Segment;

/// What one cleaning pass may touch, as the partition decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanLimits {
    /// Nothing at or beyond this offset is cleaned (the high watermark).
    pub upto: i64,
    /// Where the dirty part starts: offsets below it were cleaned before (the key map is
    /// built from here).
    pub first_dirty: i64,
    /// `min.compaction.lag.ms`: a segment with a record newer than this is not cleaned.
    pub min_compaction_lag_ms: i64,
    /// `delete.retention.ms`: how long after the first clean that keeps a tombstone it may go
    /// (the delete horizon written into its batch).
    pub delete_retention_ms: i64,
    /// Each idempotent producer's last batch (producer id → base offset): kept, emptied if
    /// all its records go (Kafka's `RETAIN_EMPTY`), so that the producer's sequence survives
    /// a rebuild of producer state from the log. Other emptied batches go.
    pub last_batches: std::collections::HashMap<i64, i64>,
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// The first offset not covered by this pass's key map: the next pass's dirty point.
    pub cleaned_upto: i64,
    pub segments_rewritten: usize,
    /// Segments that were merged into the one before them (a group of `n` counts `n - 1`).
    pub segments_merged: usize,
    pub bytes_read: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
}

/// A sealed segment the pass may clean.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    base: i64,
    next: i64,
    size: u64,
}

/// The time of a pass and `delete.retention.ms`: what tombstones' horizons are written from
/// and judged against.
#[derive(Debug, Clone, Copy)]
struct Tombstones {
    now: i64,
    delete_retention_ms: i64,
}

impl Tombstones {
    /// The delete horizon written into a batch whose tombstone this pass keeps first.
    fn horizon(&self) -> i64 {
        self.now.saturating_add(self.delete_retention_ms)
    }
}

/// Consecutive segments grouped, oldest first, so that each group's total size stays within
/// `max_bytes` (`segment.bytes`) and its offsets within what a segment's index can address:
/// each group is cleaned into one segment (Kafka's `groupSegmentsBySize`, on the sizes before
/// cleaning: segments a clean made small are merged by the next one).
fn group_by_size(segments: &[Candidate], max_bytes: u64) -> Vec<&[Candidate]> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let mut end = start + 1;
        let mut size = segments[start].size;
        while end < segments.len()
            && size + segments[end].size <= max_bytes
            && segments[end].next - segments[start].base <= MAX_SEGMENT_OFFSET_SPAN
        {
            size += segments[end].size;
            end += 1;
        }
        groups.push(&segments[start..end]);
        start = end;
    }
    groups
}

impl PartitionLog {
    /// Sizes of the cleanable part of the log (sealed segments below `upto`) below and from
    /// `first_dirty`: `(clean_bytes, dirty_bytes)`. The dirty ratio is `dirty / (clean + dirty)`.
    pub fn cleanable_bytes(&self, upto: i64, first_dirty: i64) -> (u64, u64) {
        let st = self.state.borrow();
        let (mut clean, mut dirty) = (0, 0);
        for s in st.segments.values().filter(|s| !s.is_active()) {
            if s.next_offset() > upto {
                break;
            }
            if s.next_offset() <= first_dirty {
                clean += s.size();
            } else {
                dirty += s.size();
            }
        }
        (clean, dirty)
    }

    /// The earliest first-batch timestamp (the first batch's max timestamp; unknown ones, -1,
    /// left out) of the sealed segments holding offsets from `first_dirty` below `upto`:
    /// what `max.compaction.lag.ms` is judged on (Kafka's `LogCleanerManager.maxCompactionDelay`).
    /// A segment opened from its indexes has its first header read once.
    pub async fn earliest_dirty_timestamp(
        &self,
        upto: i64,
        first_dirty: i64,
    ) -> Result<Option<i64>> {
        let mut earliest: Option<i64> = None;
        let segments: Vec<(i64, Option<i64>, Rc<glommio::io::DmaFile>)> = {
            let st = self.state.borrow();
            st.segments
                .values()
                .filter(|s| {
                    !s.is_active() && s.next_offset() > first_dirty && s.next_offset() <= upto
                })
                .map(|s| (s.base_offset, s.known_first_batch_timestamp(), s.file()))
                .collect()
        };
        for (base, known, file) in segments {
            let ts = match known {
                Some(ts) => ts,
                None => {
                    let head = file.read_at(0, HEADER_BYTES).await?;
                    let ts = BatchHeader::parse(&head).map_or(-1, |h| h.max_timestamp);
                    if let Some(s) = self.state.borrow_mut().segments.get_mut(&base) {
                        // The same file still: a swap in between brings a new segment.
                        if Rc::ptr_eq(&s.file(), &file) {
                            s.set_first_batch_timestamp(ts);
                        }
                    }
                    ts
                }
            };
            if ts > 0 {
                earliest = Some(earliest.map_or(ts, |e| e.min(ts)));
            }
        }
        Ok(earliest)
    }

    fn candidates(&self, limits: &CleanLimits) -> Vec<Candidate> {
        let now = self.clock.now_ms();
        let st = self.state.borrow();
        let mut out = Vec::new();
        for s in st.segments.values().filter(|s| !s.is_active()) {
            let young = limits.min_compaction_lag_ms > 0
                && s.max_timestamp() > now.saturating_sub(limits.min_compaction_lag_ms);
            if s.next_offset() > limits.upto || young {
                break;
            }
            out.push(Candidate {
                base: s.base_offset,
                next: s.next_offset(),
                size: s.size(),
            });
        }
        out
    }

    /// One cleaning pass with `map` (cleared first; its budget bounds the pass). `failpoint`
    /// stops the first swap after that step with an error, as a crash there would (tests).
    pub async fn clean(
        &self,
        limits: &CleanLimits,
        map: &mut KeyMap,
        failpoint: Option<SwapStep>,
    ) -> Result<CleanReport> {
        map.clear();
        let segments = self.candidates(limits);
        let Some(last) = segments.last() else {
            return Ok(CleanReport {
                cleaned_upto: limits.first_dirty,
                ..Default::default()
            });
        };
        let end = last.next;
        let start = limits.first_dirty.max(self.log_start());
        let mut report = CleanReport {
            cleaned_upto: start.max(limits.first_dirty),
            ..Default::default()
        };
        if start >= end {
            return Ok(report);
        }
        let slice = Slice::default();
        // 1. The key map over the dirty part, until it is full.
        let mut map_end = end;
        let mut scan = self.scan_by(start, end, CLEANER_READ_BYTES);
        'build: while let Some(b) = scan.next().await? {
            report.bytes_read += b.len() as u64;
            let Some((h, section, records)) = batch_records(&b)? else {
                // Too large to decompress within the bound: its keys stay out of the map, so
                // nothing is dropped for them; the batch itself is kept as it is.
                tracing::warn!(dir = %self.dir.display(), batch = %BatchHeader::parse(&b).map_or(-1, |h| h.base_offset), "a batch decompresses beyond the cleaner's bound: left uncleaned");
                continue;
            };
            if h.is_control() {
                continue;
            }
            for r in &records {
                if let Some((from, to)) = r.key {
                    if !map.insert(&section[from..to], r.offset) {
                        map_end = h.base_offset;
                        break 'build;
                    }
                }
            }
            slice.pause().await;
        }
        drop(scan);
        if map_end <= start {
            return Err(StorageError::InvalidConfig(
                "the cleaner's key map cannot hold the keys of one batch".into(),
            ));
        }
        report.cleaned_upto = map_end;
        // 2. Every cleanable segment below the map's end, oldest first.
        let now = self.clock.now_ms();
        let mut failpoint = failpoint;
        let log_start = self.log_start();
        let below: Vec<Candidate> = segments
            .iter()
            .filter(|s| s.base < map_end && s.next > log_start)
            .copied()
            .collect();
        let max_bytes = self.config.borrow().segment_bytes;
        for group in group_by_size(&below, max_bytes) {
            let seg = &Candidate {
                base: group[0].base,
                next: group[group.len() - 1].next,
                size: group.iter().map(|s| s.size).sum(),
            };
            let tombstones = Tombstones {
                now,
                delete_retention_ms: limits.delete_retention_ms,
            };
            let (changed, removed, after) = self
                .write_cleaned(seg, map, map_end, tombstones, &limits.last_batches)
                .await?;
            report.bytes_read += seg.size;
            // Several segments merged are a change even if no record went.
            if !changed && group.len() == 1 {
                let _ = std::fs::remove_file(swap::cleaned_path(&self.dir, seg.base));
                continue;
            }
            self.swap_in(seg, group, failpoint.take()).await?;
            report.segments_merged += group.len() - 1;
            report.segments_rewritten += 1;
            report.records_removed += removed;
            report.bytes_before += seg.size;
            report.bytes_after += after;
        }
        Ok(report)
    }

    /// Writes the cleaned copy of `seg` to its `.cleaned` file (synced). Returns whether
    /// anything changed, the records removed and the new size.
    async fn write_cleaned(
        &self,
        seg: &Candidate,
        map: &KeyMap,
        map_end: i64,
        tombstones: Tombstones,
        last_batches: &std::collections::HashMap<i64, i64>,
    ) -> Result<(bool, u64, u64)> {
        let slice = Slice::default();
        let mut file = swap::CleanedFile::create(&self.dir, seg.base, seg.size).await?;
        // Batches wholly below the log start (DeleteRecords) are not kept either.
        let from = seg.base.max(self.log_start());
        let (mut changed, mut removed) = (from > seg.base, 0u64);
        let mut scan = self.scan_by(from, seg.next, CLEANER_READ_BYTES);
        while let Some(b) = scan.next().await? {
            let Some(h) = BatchHeader::parse(&b) else {
                return Err(StorageError::Corrupt(
                    "unparsable batch in a sealed segment".into(),
                ));
            };
            if h.is_control() {
                file.push(&b)?;
            } else if let Some((h, section, records)) = batch_records(&b)? {
                let horizon = h.delete_horizon();
                let horizon_passed = horizon.is_some_and(|t| tombstones.now >= t);
                let keep: Vec<usize> = records
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| {
                        if r.offset >= map_end {
                            return true;
                        }
                        let Some((from, to)) = r.key else {
                            return false; // Kafka drops keyless records from compacted logs
                        };
                        let newest = map.get(&section[from..to]).is_none_or(|o| o <= r.offset);
                        newest && !(r.tombstone && horizon_passed)
                    })
                    .map(|(i, _)| i)
                    .collect();
                removed += (records.len() - keep.len()) as u64;
                // The first clean keeping a tombstone writes its horizon into the batch.
                let stamp = (horizon.is_none() && keep.iter().any(|&i| records[i].tombstone))
                    .then(|| tombstones.horizon());
                // A producer's last batch stays, emptied if need be (Kafka's RETAIN_EMPTY);
                // any other batch left with no record goes (DELETE_EMPTY).
                let producers_last =
                    h.producer_id >= 0 && last_batches.get(&h.producer_id) == Some(&h.base_offset);
                if keep.is_empty() && !producers_last {
                    changed = true;
                } else if keep.is_empty() && !records.is_empty() {
                    changed = true;
                    file.push(&empty_batch(&b, &h))?;
                } else if keep.len() == records.len() && stamp.is_none() {
                    file.push(&b)?;
                } else {
                    changed = true;
                    file.push(&rebuild(&b, &h, &section, &records, &keep, stamp)?)?;
                }
            } else {
                // Beyond the decompression bound: kept as it is, uncleaned.
                file.push(&b)?;
            }
            if file.pending_bytes() >= CLEANER_WRITE_BYTES as u64 {
                file.write_out().await?;
            }
            slice.pause().await;
        }
        drop(scan);
        let size = file.finish().await?;
        Ok((changed, removed, size))
    }

    /// Swaps the cleaned copy of `seg` in (steps 2–5 of the protocol), its indexes rebuilt,
    /// in place of the segments of `group` (one, or several merged; `seg` spans them).
    async fn swap_in(
        &self,
        seg: &Candidate,
        group: &[Candidate],
        failpoint: Option<SwapStep>,
    ) -> Result<()> {
        let merged_end = (group.len() > 1).then_some(seg.next);
        let bases: Vec<i64> = group.iter().map(|s| s.base).collect();
        let fail = |step: SwapStep| -> Result<()> {
            if failpoint == Some(step) {
                return Err(StorageError::Io(std::io::Error::other(format!(
                    "failpoint: stopped after {step:?}"
                ))));
            }
            Ok(())
        };
        let interval = self.config.borrow().index_interval_bytes;
        let now = self.clock.now_ms();
        // Scanned before the swap, off the permit: batches validated, indexes built.
        let (mut new_seg, scan) = Segment::recover_file(
            swap::cleaned_path(&self.dir, seg.base),
            seg.base,
            interval,
            now,
            true,
        )
        .await?;
        if new_seg.next_offset() > seg.next || scan.problem.is_some() {
            let _ = std::fs::remove_file(swap::cleaned_path(&self.dir, seg.base));
            return Err(StorageError::Corrupt(format!(
                "cleaned segment {} ends at {}, beyond {} ({:?})",
                seg.base,
                new_seg.next_offset(),
                seg.next,
                scan.problem
            )));
        }
        new_seg.end_at(seg.next);
        fail(SwapStep::CleanedWritten)?;
        let _permit = self.io_permit().await?;
        let still_there = {
            let st = self.state.borrow();
            group.iter().all(|g| {
                st.segments
                    .get(&g.base)
                    .is_some_and(|s| !s.is_active() && s.next_offset() == g.next)
            })
        };
        if !still_there {
            // Retention or DeleteRecords removed it meanwhile.
            let _ = std::fs::remove_file(swap::cleaned_path(&self.dir, seg.base));
            return Ok(());
        }
        let dir = self.dir.clone();
        let base = seg.base;
        glommio::executor()
            .spawn_blocking(move || swap::commit(&dir, base, merged_end))
            .await?;
        fail(SwapStep::RenamedToSwap)?;
        let (dir, old) = (self.dir.clone(), bases.clone());
        glommio::executor()
            .spawn_blocking(move || swap::delete_old(&dir, &old))
            .await?;
        fail(SwapStep::OldDeleted)?;
        let dir = self.dir.clone();
        glommio::executor()
            .spawn_blocking(move || swap::install(&dir, base, merged_end))
            .await?;
        fail(SwapStep::RenamedToLog)?;
        new_seg.renamed(swap::log_path(&self.dir, seg.base));
        new_seg.seal(&self.dir).await?;
        {
            let mut st = self.state.borrow_mut();
            for b in &bases {
                st.segments.remove(b);
            }
            st.segments.insert(seg.base, new_seg);
            // Cached batches of the old file must not be served (or cleaned) again: drop the
            // cache up to the segment's end (all of it on disk, in sealed segments).
            st.tail.retain_from(seg.next);
        }
        for b in &bases {
            self.read_ahead.forget(*b);
        }
        tracing::debug!(dir = %self.dir.display(), segment = seg.base, merged = group.len(), "swapped in a cleaned segment");
        Ok(())
    }
}
