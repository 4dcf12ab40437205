//! The partition log: an ordered set of segments with one active segment at the end.
//!
//! It owns the mechanisms of a partition's files: offset assignment, rolls, writes and
//! group-commit syncs, reads, timestamp lookups, removal of old segments and recovery on open.
//! It decides no policy: when to sync (the flush policy), what consumers may see (the high
//! watermark) and whether old segments may go (the cleanup policy) are the partition's calls
//! (`crate::partition`), which asks for them through [`PartitionLog::flush`],
//! [`PartitionLog::write_out`] and [`PartitionLog::enforce_retention`].
//!
//! All state sits in one `RefCell` that is never borrowed across an `.await`; the I/O that
//! changes files (flush, roll, retention, close) is serialized by a one-permit semaphore local
//! to the executor, so concurrent producers on the same core share syncs instead of queueing
//! behind a lock. A log is owned by exactly one core and is `!Send`.
//!
//! One file per job: [`recover`] (open), [`append`] (offsets, rolls), [`flush`] (writes and
//! syncs), [`read`] (reads and timestamp search), [`retention`] (removing old segments) and
//! [`scan`] (the one iterator over every batch of a range), [`compact`] (cleaning sealed
//! segments for compacted topics), [`truncate`] (cutting the tail a replica must give up).

mod append;
mod compact;
mod flush;
mod read;
mod recover;
mod retention;
mod scan;
mod truncate;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use glommio::sync::Semaphore;

use super::batch::iter_batches;
use super::clock::Clock;
use super::config::{FlushPolicy, LogConfig};
use super::error::{Result, StorageError};
use super::meta::PartitionMeta;
use super::read_ahead::ReadAhead;
use super::segment::Segment;
use super::tail_cache::{CacheBudget, TailCache};
use crate::limits::TAIL_CACHE_BYTES;
use crate::notify::Notify;

pub use compact::{CleanLimits, CleanReport};
pub use retention::RetentionLimits;
pub use scan::LogScan;

/// What an append assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The LogAppendTime stamped, or -1 under CreateTime.
    pub log_append_time: i64,
    pub record_count: i64,
}

/// Whole batches read from the log, as stored: each chunk is one or more whole batches that
/// sit next to each other in memory, so a reader can pass a chunk on without copying it.
#[derive(Debug, Clone, Default)]
pub struct ReadBatches {
    pub chunks: Vec<Bytes>,
}

impl ReadBatches {
    pub fn total_bytes(&self) -> usize {
        self.chunks.iter().map(|b| b.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Each batch as its own slice (no copy).
    pub fn batches(&self) -> Vec<Bytes> {
        self.chunks
            .iter()
            .flat_map(|c| {
                iter_batches(c)
                    .map(|(at, h)| c.slice(at..at + h.total_size()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

struct State {
    segments: BTreeMap<i64, Segment>,
    log_start: i64,
    /// Offset below which every batch is on the device (written, maybe not synced).
    written_offset: i64,
    tail: TailCache,
    unflushed_messages: u64,
    oldest_unflushed_ms: Option<i64>,
    /// Set while a roll is in progress: appends wait for it.
    rolling: bool,
}

impl State {
    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }
    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }
    fn log_end(&self) -> i64 {
        self.active().next_offset()
    }
    fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size()).sum()
    }
}

/// One partition's log.
pub struct PartitionLog {
    dir: PathBuf,
    config: RefCell<LogConfig>,
    clock: Rc<dyn Clock>,
    state: RefCell<State>,
    io: Semaphore,
    /// Offset below which everything is synced.
    flushed: Cell<i64>,
    /// Set after an I/O failure: the log refuses writes until reopened (recovery repairs it).
    failed: Cell<bool>,
    /// Fired whenever the holder of the I/O permit lets it go.
    io_done: Notify,
    /// Segment bytes read ahead of a consumer reading in order.
    read_ahead: ReadAhead,
    /// Reads that waited for the disk themselves (not served by the cache or the read-ahead).
    disk_reads: Cell<u64>,
    /// fdatasync calls issued, for observing group commit.
    syncs: Cell<u64>,
}

/// A summary of a recovery, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecoveryReport {
    pub segments: usize,
    pub scanned_segments: usize,
    pub cut_bytes: u64,
    pub removed_segments: usize,
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, recovering it (see [`recover`]). Its tail cache
    /// has a budget of its own ([`TAIL_CACHE_BYTES`]); a broker shares one per core
    /// ([`Self::open_cached`]).
    pub async fn open(
        dir: &Path,
        config: LogConfig,
        clock: Rc<dyn Clock>,
    ) -> Result<(PartitionLog, RecoveryReport)> {
        Self::open_cached(dir, config, clock, CacheBudget::new(TAIL_CACHE_BYTES)).await
    }

    async fn store_meta(&self) -> Result<()> {
        let meta = {
            let st = self.state.borrow();
            PartitionMeta {
                log_start_offset: st.log_start,
                recovery_point: st.active().base_offset,
            }
        };
        meta.store_off_core(&self.dir).await
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> LogConfig {
        self.config.borrow().clone()
    }
    pub fn set_config(&self, config: LogConfig) {
        *self.config.borrow_mut() = config;
    }
    /// The topic's `min.insync.replicas`, without copying the config.
    pub fn min_insync_replicas(&self) -> i32 {
        self.config.borrow().min_insync_replicas
    }
    /// The topic's flush policy (`flush.messages`, `flush.ms`), without copying the config.
    pub fn flush_policy(&self) -> FlushPolicy {
        self.config.borrow().flush
    }
    /// How far before and after the clock a CreateTime batch's timestamps may be, in ms
    /// (unbounded under LogAppendTime, where the broker stamps the time).
    pub fn timestamp_window(&self) -> (i64, i64) {
        let c = self.config.borrow();
        match c.timestamp_type {
            super::config::TimestampType::LogAppendTime => (i64::MAX, i64::MAX),
            super::config::TimestampType::CreateTime => {
                (c.timestamp_before_max_ms, c.timestamp_after_max_ms)
            }
        }
    }
    /// Whether the topic's cleanup policy compacts (read without copying the config).
    pub fn compacts(&self) -> bool {
        self.config.borrow().compacts()
    }
    /// The largest batch the topic accepts (`max.message.bytes`).
    pub fn max_message_bytes(&self) -> usize {
        self.config.borrow().max_message_bytes as usize
    }
    /// Records appended since the last sync, and when the oldest of them was appended: what a
    /// flush policy (`flush.messages`, `flush.ms`) decides on.
    pub fn unflushed(&self) -> (u64, Option<i64>) {
        let st = self.state.borrow();
        (st.unflushed_messages, st.oldest_unflushed_ms)
    }
    pub fn log_start(&self) -> i64 {
        self.state.borrow().log_start
    }
    /// Offset the next appended record will get (Kafka's log end offset).
    pub fn log_end(&self) -> i64 {
        self.state.borrow().log_end()
    }
    /// Offset below which everything is written to the file (synced or not).
    pub fn written_offset(&self) -> i64 {
        self.state.borrow().written_offset
    }
    /// Bytes appended and not yet written to the file.
    pub fn staged_bytes(&self) -> u64 {
        self.state.borrow().active().pending_bytes()
    }
    /// Offset below which everything is synced.
    pub fn flushed_offset(&self) -> i64 {
        self.flushed.get()
    }
    /// The clock the log stamps and ages segments with.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
    /// fdatasync calls this log has issued since it was opened.
    pub fn sync_count(&self) -> u64 {
        self.syncs.get()
    }
    /// Reads that waited for the disk themselves since the log was opened.
    pub fn disk_read_count(&self) -> u64 {
        self.disk_reads.get()
    }
    pub fn size_bytes(&self) -> u64 {
        self.state.borrow().size_bytes()
    }
    pub fn segment_count(&self) -> usize {
        self.state.borrow().segments.len()
    }
    /// Base offset of the active (last) segment.
    pub fn active_base(&self) -> i64 {
        self.state.borrow().active().base_offset
    }
    pub fn segment_bases(&self) -> Vec<i64> {
        self.state.borrow().segments.keys().copied().collect()
    }
    pub fn tail_cache_bytes(&self) -> usize {
        self.state.borrow().tail.bytes()
    }
    /// Arrival stamp of this log's oldest cached batch that may leave the cache (see
    /// [`super::tail_cache`]); the shard trims the log holding the core's oldest first.
    pub fn oldest_cached(&self) -> Option<u64> {
        let st = self.state.borrow();
        st.tail.oldest(st.written_offset)
    }
    /// Drops about `bytes` of this log's oldest cached batches that are on disk; returns how
    /// many bytes left the cache.
    pub fn evict_cached(&self, bytes: usize) -> usize {
        let mut st = self.state.borrow_mut();
        let on_disk = st.written_offset;
        st.tail.evict_oldest(on_disk, bytes)
    }
    /// Index entries of every segment (for tests and tooling).
    pub fn index_entries(
        &self,
    ) -> Vec<(
        i64,
        Vec<super::index::OffsetEntry>,
        Vec<super::index::TimeEntry>,
    )> {
        self.state
            .borrow()
            .segments
            .values()
            .map(|s| {
                let (o, t) = s.index_entries();
                (s.base_offset, o, t)
            })
            .collect()
    }

    fn check_writable(&self) -> Result<()> {
        if self.failed.get() {
            return Err(StorageError::Io(std::io::Error::other(
                "partition log failed an earlier write; reopen to recover",
            )));
        }
        Ok(())
    }

    /// Gives the log up without writing anything (its partition is being deleted): every
    /// later append, flush and close is refused, and waiters for the I/O permit are let go.
    pub fn abandon(&self) {
        self.failed.set(true);
        self.io.close();
    }

    /// Flushes everything and records a clean recovery point.
    pub async fn close(&self) -> Result<()> {
        if self.failed.get() {
            return Ok(());
        }
        let _permit = self.io_permit().await?;
        self.write_staged(true).await?;
        let file = self.state.borrow().active().file();
        let size = self.state.borrow().active().size();
        file.truncate(size).await?;
        file.fdatasync().await?;
        self.store_meta().await?;
        self.io.close();
        Ok(())
    }
}

/// Holds the I/O permit; on release, wakes callers of `flush` waiting for an I/O to end.
struct IoGuard<'a> {
    pub(super) _permit: glommio::sync::Permit<'a>,
    pub(super) done: &'a Notify,
}

impl Drop for IoGuard<'_> {
    fn drop(&mut self) {
        self.done.notify();
    }
}

fn remove_segment_files(dir: &Path, base: i64) -> Result<()> {
    let stem = super::segment::file_stem(base);
    for ext in ["log", "index", "timeindex"] {
        match std::fs::remove_file(dir.join(format!("{stem}.{ext}"))) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
