//! The partition log: an ordered set of segments with one active segment at the end.
//!
//! It owns offset assignment, rolls, group-commit flushes, retention, reads and recovery on
//! open. All state sits in one `RefCell` that is never borrowed across an `.await`; the I/O
//! that changes files (flush, roll, retention, close) is serialized by a one-permit
//! semaphore local to the executor, so concurrent producers on the same core share syncs
//! instead of queueing behind a lock. A log is owned by exactly one core and is `!Send`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use glommio::sync::Semaphore;

use super::batch::{
    iter_batches, set_base_offset, set_log_append_time, validate_batches, BatchHeader,
};
use super::clock::Clock;
use super::config::{LogConfig, TimestampType};
use super::error::{Result, StorageError};
use super::meta::PartitionMeta;
use super::read_ahead::ReadAhead;
use super::segment::{submit_writes, Segment};
use super::tail_cache::{CacheBudget, CachedBatch, TailCache};
use crate::limits::{MAX_READ_BYTES, TAIL_CACHE_BYTES, WRITE_BUFFER_BYTES};
use crate::notify::Notify;

/// Smallest read issued against a segment file, so small fetches still read ahead.
const MIN_READ_BYTES: usize = 64 * 1024;

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

fn list_segment_bases(dir: &Path) -> Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".log") {
            if let Ok(b) = stem.parse::<i64>() {
                bases.push(b);
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, recovering it: sealed segments before the recovery
    /// point are trusted if their indexes check out; the rest are re-validated batch by batch
    /// and the log is cut after the last good batch. Its tail cache has a budget of its own
    /// ([`TAIL_CACHE_BYTES`]); a broker shares one per core ([`Self::open_cached`]).
    pub async fn open(
        dir: &Path,
        config: LogConfig,
        clock: Rc<dyn Clock>,
    ) -> Result<(PartitionLog, RecoveryReport)> {
        Self::open_cached(dir, config, clock, CacheBudget::new(TAIL_CACHE_BYTES)).await
    }

    /// [`Self::open`], the tail cache drawing on `cache`.
    pub async fn open_cached(
        dir: &Path,
        config: LogConfig,
        clock: Rc<dyn Clock>,
        cache: Rc<CacheBudget>,
    ) -> Result<(PartitionLog, RecoveryReport)> {
        std::fs::create_dir_all(dir)?;
        super::device_probe::ensure_probed(dir).await?;
        let now = clock.now_ms();
        let meta = PartitionMeta::load(dir)?;
        let mut bases = list_segment_bases(dir)?;
        let mut report = RecoveryReport::default();
        let log_start_meta = meta.map(|m| m.log_start_offset).unwrap_or(0);
        // Segments wholly below the log start were being deleted by retention: finish that.
        while bases.len() > 1 && bases[1] <= log_start_meta {
            let b = bases.remove(0);
            remove_segment_files(dir, b)?;
            report.removed_segments += 1;
        }
        let mut segments = BTreeMap::new();
        if bases.is_empty() {
            let seg =
                Segment::create(dir, log_start_meta, config.index_interval_bytes, now).await?;
            segments.insert(log_start_meta, seg);
        } else {
            let recovery_point = meta.map(|m| m.recovery_point).unwrap_or(0);
            let last = *bases.last().expect("non-empty");
            let scan_from = recovery_point.min(last);
            let mut i = 0;
            while i < bases.len() {
                let base = bases[i];
                let next_base = bases.get(i + 1).copied();
                let trusted = match next_base {
                    Some(next) if next <= scan_from => {
                        Segment::open_sealed(dir, base, next, config.index_interval_bytes, now)
                            .await?
                    }
                    _ => None,
                };
                if let Some(seg) = trusted {
                    segments.insert(base, seg);
                    i += 1;
                    continue;
                }
                let (mut seg, scan) =
                    Segment::recover(dir, base, config.index_interval_bytes, now).await?;
                report.scanned_segments += 1;
                report.cut_bytes += scan.cut_bytes;
                if scan.cut_nonzero || scan.problem.is_some() {
                    tracing::warn!(
                        dir = %dir.display(), segment = base, kept_bytes = scan.valid_bytes, cut_bytes = scan.cut_bytes,
                        reason = scan.problem.as_deref().unwrap_or("trailing bytes"), "recovery cut the log"
                    );
                }
                let continues = next_base.is_some_and(|n| n == seg.next_offset());
                if continues {
                    seg.seal(dir).await?;
                    segments.insert(base, seg);
                    i += 1;
                    continue;
                }
                // This is the last segment, or the log was cut inside it: everything after goes.
                for later in &bases[i + 1..] {
                    tracing::warn!(dir = %dir.display(), segment = later, "removing segment after the cut");
                    remove_segment_files(dir, *later)?;
                    report.removed_segments += 1;
                }
                seg.file().fdatasync().await?;
                segments.insert(base, seg);
                break;
            }
        }
        report.segments = segments.len();
        let first_base = *segments.keys().next().expect("non-empty");
        let state = State {
            log_start: log_start_meta.max(first_base),
            written_offset: 0,
            tail: TailCache::new(cache),
            unflushed_messages: 0,
            oldest_unflushed_ms: None,
            rolling: false,
            segments,
        };
        let end = state.log_end();
        let log_start = state.log_start.min(end);
        let log = PartitionLog {
            dir: dir.to_path_buf(),
            config: RefCell::new(config),
            clock,
            state: RefCell::new(State {
                written_offset: end,
                log_start,
                ..state
            }),
            io: Semaphore::new(1),
            flushed: Cell::new(end),
            failed: Cell::new(false),
            io_done: Notify::default(),
            read_ahead: ReadAhead::default(),
            disk_reads: Cell::new(0),
            syncs: Cell::new(0),
        };
        log.store_meta().await?;
        Ok((log, report))
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
    /// Whether the topic's flush policy syncs every append before it is acknowledged.
    pub fn sync_every_append(&self) -> bool {
        self.config.borrow().sync_every_append()
    }
    /// What consumers may read: synced data when every append is synced before its ack,
    /// otherwise the log end (durability was traded away by the topic's flush policy).
    pub fn high_watermark(&self) -> i64 {
        if self.sync_every_append() {
            self.flushed.get()
        } else {
            self.log_end()
        }
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

    /// Validates the batches in `payload` and appends them, assigning offsets. Either every
    /// batch is appended or none. The data is staged in memory: call [`Self::flush`] to make it
    /// durable (the broker does so before acknowledging, as the flush policy says).
    pub async fn append(&self, payload: &[u8]) -> Result<AppendInfo> {
        self.append_bytes(Bytes::copy_from_slice(payload)).await
    }

    /// [`Self::append`] of bytes the caller gives up: when nothing else references their buffer
    /// (a produce request's frame carrying one partition) the batches are stamped and cached in
    /// place, without the copy `append` makes.
    pub async fn append_bytes(&self, payload: Bytes) -> Result<AppendInfo> {
        self.check_writable()?;
        let (max_bytes, timestamp_type) = {
            let c = self.config.borrow();
            (c.max_message_bytes as usize, c.timestamp_type)
        };
        let headers = validate_batches(&payload, max_bytes)?;
        let incoming = payload.len() as u64;
        let incoming_records: i64 = headers.iter().map(|h| h.record_count as i64).sum();
        loop {
            let now = self.clock.now_ms();
            let must_roll = {
                let st = self.state.borrow();
                st.rolling
                    || needs_roll(
                        st.active(),
                        &self.config.borrow(),
                        now,
                        incoming,
                        incoming_records,
                    )
            };
            if !must_roll {
                break;
            }
            self.roll_if_needed(incoming, incoming_records).await?;
        }
        let now = self.clock.now_ms();
        // No copy when `payload` is the only handle on its buffer.
        let mut buf = BytesMut::from(payload);
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        let first = st.log_end();
        let mut next = first;
        let mut pos = 0usize;
        let mut records = 0i64;
        if st.active().size() == 0 {
            // `segment.ms` counts from the first append, not from when the file was made.
            st.active_mut().created_ms = now;
        }
        for h in &headers {
            let n = h.total_size();
            let batch = &mut buf[pos..pos + n];
            set_base_offset(batch, next);
            if timestamp_type == TimestampType::LogAppendTime {
                set_log_append_time(batch, now);
            }
            let stored = BatchHeader {
                base_offset: next,
                ..*h
            };
            let stored = if timestamp_type == TimestampType::LogAppendTime {
                BatchHeader {
                    max_timestamp: now,
                    ..stored
                }
            } else {
                stored
            };
            st.active_mut().append(batch, &stored)?;
            next = stored.next_offset();
            records += h.record_count as i64;
            pos += n;
        }
        let frozen = buf.freeze();
        let mut pos = 0usize;
        let mut base = first;
        for h in &headers {
            let n = h.total_size();
            let next = base + h.last_offset_delta as i64 + 1;
            st.tail.push(CachedBatch {
                base,
                next,
                parent: frozen.clone(),
                start: pos,
                end: pos + n,
            });
            pos += n;
            base = next;
        }
        st.unflushed_messages += records as u64;
        st.oldest_unflushed_ms.get_or_insert(now);
        st.tail.evict(st.written_offset);
        Ok(AppendInfo {
            base_offset: first,
            last_offset: next - 1,
            log_append_time: if timestamp_type == TimestampType::LogAppendTime {
                now
            } else {
                -1
            },
            record_count: records,
        })
    }

    /// Whether the flush policy asks for a sync now (`flush.messages` / `flush.ms`), or the
    /// staged bytes are past the write buffer and should at least be written out.
    pub fn flush_due(&self) -> bool {
        let c = self.config.borrow();
        let st = self.state.borrow();
        st.unflushed_messages >= c.flush.messages
            || st
                .oldest_unflushed_ms
                .is_some_and(|t| self.clock.now_ms().saturating_sub(t) >= c.flush.ms)
    }

    /// Whether staged bytes exceed the write buffer and should be written out (without sync).
    pub fn write_out_due(&self) -> bool {
        self.state.borrow().active().pending_bytes() >= WRITE_BUFFER_BYTES as u64
    }

    /// Makes every offset below `upto` durable. Concurrent callers share syncs: whoever holds
    /// the I/O permit syncs everything staged so far, and the others find their data covered.
    pub async fn flush(&self, upto: i64) -> Result<()> {
        loop {
            if self.flushed.get() >= upto {
                return Ok(());
            }
            self.check_writable()?;
            let done = self.io_done.notified();
            match self.io.try_acquire_permit(1) {
                Ok(permit) => {
                    let _guard = IoGuard {
                        _permit: permit,
                        done: &self.io_done,
                    };
                    self.write_staged(true).await?;
                }
                Err(glommio::GlommioError::Closed(_)) => return Err(StorageError::Closed),
                // Someone else holds the permit: wait for a flush to finish, not for the permit.
                // A flusher that keeps re-acquiring the permit must not starve callers whose
                // data it already made durable.
                Err(_) => done.await,
            }
        }
    }

    /// The I/O permit (flush, roll, retention, close); waiters are told when it is let go.
    async fn io_permit(&self) -> Result<IoGuard<'_>> {
        let permit = self
            .io
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed)?;
        Ok(IoGuard {
            _permit: permit,
            done: &self.io_done,
        })
    }

    /// Writes staged bytes out without a sync (bounds memory under a relaxed flush policy).
    pub async fn write_out(&self) -> Result<()> {
        self.check_writable()?;
        let _permit = self.io_permit().await?;
        self.write_staged(false).await
    }

    /// Writes the active segment's staged bytes, and syncs when asked. Caller holds the permit.
    async fn write_staged(&self, sync: bool) -> Result<()> {
        let (file, writes, target, allocate) = {
            let mut st = self.state.borrow_mut();
            let target = st.log_end();
            let active = st.active_mut();
            let (file, writes) = active.take_writes()?;
            let allocate = active.allocation_for(&writes);
            (file, writes, target, allocate)
        };
        let result = async {
            if let Some(size) = allocate {
                // Best effort: without it writes are slower, not wrong (and a full disk is
                // reported by the write itself).
                if let Err(e) = file.pre_allocate(size, false).await {
                    tracing::debug!(dir = %self.dir.display(), error = %e, "preallocation failed");
                }
            }
            let end = submit_writes(&file, writes).await?;
            if sync {
                file.fdatasync().await?;
                self.syncs.set(self.syncs.get() + 1);
            }
            Ok::<_, StorageError>(end)
        }
        .await;
        let end = match result {
            Ok(end) => end,
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "write failed; partition refuses writes until reopened");
                self.failed.set(true);
                return Err(e);
            }
        };
        let mut st = self.state.borrow_mut();
        if let Some(end) = end {
            st.active_mut().mark_written(end);
        }
        st.written_offset = target;
        if sync {
            self.flushed.set(self.flushed.get().max(target));
            st.unflushed_messages = 0;
            st.oldest_unflushed_ms = None;
        }
        let written = st.written_offset;
        st.tail.evict(written);
        Ok(())
    }

    /// Rolls the active segment if it still needs it once the permit is held.
    async fn roll_if_needed(&self, incoming: u64, incoming_records: i64) -> Result<()> {
        let _permit = self.io_permit().await?;
        self.check_writable()?;
        let now = self.clock.now_ms();
        {
            let mut st = self.state.borrow_mut();
            if !needs_roll(
                st.active(),
                &self.config.borrow(),
                now,
                incoming,
                incoming_records,
            ) {
                st.rolling = false;
                return Ok(());
            }
            st.rolling = true;
        }
        let result = self.roll_locked(now).await;
        self.state.borrow_mut().rolling = false;
        if result.is_err() {
            self.failed.set(true);
        }
        result
    }

    async fn roll_locked(&self, now: i64) -> Result<()> {
        self.write_staged(true).await?;
        let (base, mut old) = {
            let mut st = self.state.borrow_mut();
            let next = st.log_end();
            let key = st.active().base_offset;
            (next, st.segments.remove(&key).expect("active exists"))
        };
        let sealed = old.seal(&self.dir).await;
        self.state
            .borrow_mut()
            .segments
            .insert(old.base_offset, old);
        sealed?;
        let interval = self.config.borrow().index_interval_bytes;
        let seg = Segment::create(&self.dir, base, interval, now).await?;
        self.state.borrow_mut().segments.insert(base, seg);
        self.store_meta().await?;
        tracing::debug!(dir = %self.dir.display(), base, "rolled segment");
        Ok(())
    }

    /// Reads whole batches starting with the one that holds `offset`, at most `max_bytes`
    /// (but always at least one batch), never at or beyond `upto` (the high watermark or the
    /// last stable offset). An offset below the log start or above the log end is out of range.
    pub async fn read(&self, offset: i64, max_bytes: usize, upto: i64) -> Result<ReadBatches> {
        let (segment, file, pos, readable) = {
            let st = self.state.borrow();
            let end = st.log_end();
            if offset < st.log_start || offset > end {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    log_start: st.log_start,
                    log_end: end,
                });
            }
            if offset >= upto.min(end) {
                return Ok(ReadBatches::default());
            }
            if let Some(chunks) = st.tail.read(offset, upto, max_bytes) {
                return Ok(ReadBatches { chunks });
            }
            let Some((_, seg)) = st.segments.range(..=offset).next_back() else {
                return Ok(ReadBatches::default());
            };
            (
                seg.base_offset,
                seg.file(),
                seg.position_for(offset),
                seg.written(),
            )
        };
        if pos >= readable {
            return Ok(ReadBatches::default());
        }
        let mut want = max_bytes
            .clamp(MIN_READ_BYTES, MAX_READ_BYTES)
            .min((readable - pos) as usize);
        // The bytes read ahead serve when they hold the whole stretch wanted (or up to the
        // written end); a read ahead in flight for it is waited for rather than repeated.
        let enough = |b: &Bytes| b.len() >= want;
        let mut ahead = self.read_ahead.get(segment, pos).filter(enough);
        if ahead.is_none() && self.read_ahead.wait_for(segment, pos).await {
            ahead = self.read_ahead.get(segment, pos).filter(enough);
        }
        loop {
            let buf = match ahead.take() {
                Some(b) => b,
                None => {
                    self.disk_reads.set(self.disk_reads.get() + 1);
                    let buf = Segment::read(file.clone(), pos, want).await?;
                    self.read_ahead.keep(segment, pos, buf.clone());
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
                // the index gives for it: read from there now.
                if pos + (to as u64) < readable {
                    let next = self
                        .state
                        .borrow()
                        .segments
                        .get(&segment)
                        .map(|s| s.position_for(next_offset));
                    if let Some(next) = next.filter(|n| *n < readable) {
                        let len = want.min((readable - next) as usize);
                        self.read_ahead.start(segment, file, next, len);
                    }
                }
                return Ok(ReadBatches {
                    chunks: vec![buf.slice(from..to)],
                });
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
                _ => return Ok(ReadBatches::default()),
            }
        }
    }

    /// The first offset whose record timestamp is ≥ `ts`, with that timestamp; `None` if no
    /// record is that recent (Kafka then answers offset -1).
    pub async fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>> {
        let hw = self.high_watermark();
        let start = {
            let st = self.state.borrow();
            let Some(seg) = st.segments.values().find(|s| s.max_timestamp() >= ts) else {
                return Ok(None);
            };
            seg.offset_for_timestamp(ts).max(st.log_start)
        };
        let mut offset = start;
        while offset < hw {
            let read = self.read(offset, 1024 * 1024, hw).await?;
            if read.is_empty() {
                break;
            }
            for b in &read.batches() {
                let Some(h) = BatchHeader::parse(b) else {
                    continue;
                };
                offset = h.next_offset();
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
        }
        Ok(None)
    }

    /// Deletes whole sealed segments past `retention.ms` (by their largest timestamp) or
    /// beyond `retention.bytes`, and advances the log start. Returns the segments deleted.
    pub async fn enforce_retention(&self) -> Result<usize> {
        let _permit = self.io_permit().await?;
        let now = self.clock.now_ms();
        let (retention_ms, retention_bytes) = {
            let c = self.config.borrow();
            (c.retention_ms, c.retention_bytes)
        };
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

/// Whether the active segment must roll before taking `bytes` more bytes holding `records`
/// records: it is full (`segment.bytes`), old (`segment.ms`), or its relative offsets would
/// overflow the `u32` of the index. An empty segment never rolls (a batch larger than
/// `segment.bytes` gets a segment of its own).
fn needs_roll(active: &Segment, c: &LogConfig, now: i64, bytes: u64, records: i64) -> bool {
    active.size() > 0
        && (active.size() + bytes > c.segment_bytes
            || now.saturating_sub(active.created_ms) >= c.segment_ms
            || active.next_offset() - active.base_offset + records > u32::MAX as i64)
}

/// Holds the I/O permit; on release, wakes callers of `flush` waiting for an I/O to end.
struct IoGuard<'a> {
    _permit: glommio::sync::Permit<'a>,
    done: &'a Notify,
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
