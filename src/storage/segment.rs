//! One segment of a partition log: the `.log` file of verbatim RecordBatch v2 bytes, its
//! offset and time indexes, and (while active) its staging area.
//!
//! A segment owns its files and nothing else: it does not decide when to roll, flush or
//! delete (that is [`super::log`]), and it never sees a request or a socket. Synchronous
//! methods change in-memory state only; the few `async` ones do the I/O.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use glommio::io::{DmaFile, OpenOptions};

use super::batch::{check_frame, BatchHeader, FrameProblem, HEADER_BYTES};
use super::error::{Result, StorageError};
use super::index::{Index, OffsetEntry, TimeEntry};
use super::stage::{align_down, Stage, Write};
use crate::limits::MAX_READ_BYTES;

/// Bytes read per I/O while scanning a segment (recovery, and the cleaner's check of each
/// copy it swaps in): each chunk is copied and its batches CRC-checked between two awaits, so
/// a chunk is what a scan holds the core for at least (1 MiB: a fraction of a millisecond).
const SCAN_CHUNK_BYTES: usize = 1024 * 1024;

/// File name stem of a segment: its base offset, zero-padded to 20 digits as in Kafka.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// What recovery found when it scanned a segment.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanReport {
    /// Bytes of valid batches.
    pub valid_bytes: u64,
    /// Bytes after them that were cut off (torn write, garbage or zero padding).
    pub cut_bytes: u64,
    /// Whether any cut byte was non-zero (a torn or corrupt batch rather than padding).
    pub cut_nonzero: bool,
    /// Why the scan stopped before the end of the file, if it did.
    pub problem: Option<String>,
}

#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    log_path: PathBuf,
    file: Rc<DmaFile>,
    /// Present while the segment is the active one.
    stage: Option<Stage>,
    /// Logical size: every appended byte, staged or not.
    size: u64,
    /// Bytes handed to the device (and so readable from the file).
    written: u64,
    /// Offset after the last batch.
    next_offset: i64,
    /// Largest batch max-timestamp, and the offset where it was seen.
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    /// Wall-clock time the segment was created (for `segment.ms`).
    pub created_ms: i64,
    /// The first batch's max timestamp (Kafka's `rollingBasedTimestamp`, what
    /// `max.compaction.lag.ms` is judged on); `None` until seen (a segment opened from its
    /// indexes has it read on demand by the log and remembered here).
    first_batch_timestamp: Option<i64>,
    offset_index: Index<OffsetEntry>,
    time_index: Index<TimeEntry>,
    bytes_since_index_entry: u64,
    index_interval_bytes: u64,
    /// File bytes allocated ahead of the writes (see `MAX_PREALLOCATE_BYTES`).
    allocated: u64,
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stage(end={})", self.end())
    }
}

async fn open_rw(path: &Path, create: bool) -> Result<DmaFile> {
    Ok(OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .dma_open(path)
        .await?)
}

impl Segment {
    fn paths(dir: &Path, base: i64) -> (PathBuf, PathBuf, PathBuf) {
        let stem = file_stem(base);
        (
            dir.join(format!("{stem}.log")),
            dir.join(format!("{stem}.index")),
            dir.join(format!("{stem}.timeindex")),
        )
    }

    /// Creates a new, empty, active segment.
    pub async fn create(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
        now_ms: i64,
    ) -> Result<Segment> {
        let (log_path, index_path, time_path) = Self::paths(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(&log_path)
            .await?;
        // Stale indexes of an earlier segment with this base (after a cut) must not survive.
        let _ = std::fs::remove_file(index_path);
        let _ = std::fs::remove_file(time_path);
        let mut seg = Segment::empty(base_offset, log_path, file, index_interval_bytes, now_ms);
        seg.stage = Some(Stage::new(0, &[])?);
        Ok(seg)
    }

    /// A segment with no batches, not yet active (no stage).
    fn empty(
        base_offset: i64,
        log_path: PathBuf,
        file: DmaFile,
        index_interval_bytes: u32,
        now_ms: i64,
    ) -> Segment {
        Segment {
            base_offset,
            log_path,
            file: Rc::new(file),
            stage: None,
            size: 0,
            written: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            created_ms: now_ms,
            first_batch_timestamp: None,
            offset_index: Index::default(),
            time_index: Index::default(),
            bytes_since_index_entry: 0,
            index_interval_bytes: index_interval_bytes.max(1) as u64,
            allocated: 0,
        }
    }

    /// Opens a sealed segment and trusts its indexes if they load and agree with the file.
    /// `next_offset` is the base offset of the following segment. Returns `None` when the
    /// indexes cannot be trusted: the caller then recovers the segment with [`Self::recover`].
    pub async fn open_sealed(
        dir: &Path,
        base_offset: i64,
        next_offset: i64,
        index_interval_bytes: u32,
        now_ms: i64,
    ) -> Result<Option<Segment>> {
        let (log_path, index_path, time_path) = Self::paths(dir, base_offset);
        let (Ok(ib), Ok(tb)) = (std::fs::read(&index_path), std::fs::read(&time_path)) else {
            return Ok(None);
        };
        let (Some(offset_index), Some(time_index)) = (
            Index::<OffsetEntry>::load(&ib),
            Index::<TimeEntry>::load(&tb),
        ) else {
            return Ok(None);
        };
        let file = open_rw(&log_path, false).await?;
        let size = file.file_size().await?;
        let span = next_offset - base_offset;
        // Every entry must point inside the file, at a batch with the offset it claims.
        if let Some(last) = offset_index.last() {
            if last.position as u64 + HEADER_BYTES as u64 > size
                || last.relative_offset as i64 >= span
            {
                return Ok(None);
            }
            let head = file.read_at(last.position as u64, HEADER_BYTES).await?;
            match BatchHeader::parse(&head) {
                Some(h) if h.base_offset == base_offset + last.relative_offset as i64 => {}
                _ => return Ok(None),
            }
        }
        if time_index
            .last()
            .is_some_and(|t| t.relative_offset as i64 >= span)
        {
            return Ok(None);
        }
        let (max_timestamp, offset_of_max_timestamp) = time_index
            .last()
            .map(|t| (t.timestamp, base_offset + t.relative_offset as i64))
            .unwrap_or((-1, base_offset));
        Ok(Some(Segment {
            size,
            written: size,
            next_offset,
            max_timestamp,
            offset_of_max_timestamp,
            offset_index,
            time_index,
            ..Segment::empty(base_offset, log_path, file, index_interval_bytes, now_ms)
        }))
    }

    /// Opens a segment by scanning it from the start: every batch is re-validated (framing,
    /// magic, CRC-32C, offsets continuing from `base_offset`), the indexes are rebuilt, and
    /// the file is cut after the last good batch. The segment is left active.
    pub async fn recover(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
        now_ms: i64,
    ) -> Result<(Segment, ScanReport)> {
        let (log_path, _, _) = Self::paths(dir, base_offset);
        Self::recover_file(log_path, base_offset, index_interval_bytes, now_ms, false).await
    }

    /// [`Self::recover`] of the file at `log_path`. With `allow_gaps` (a sealed segment the
    /// cleaner compacted), a batch may start beyond the end of the one before it: compaction
    /// removes records, never renumbers them.
    pub async fn recover_file(
        log_path: PathBuf,
        base_offset: i64,
        index_interval_bytes: u32,
        now_ms: i64,
        allow_gaps: bool,
    ) -> Result<(Segment, ScanReport)> {
        let file = open_rw(&log_path, false).await?;
        let file_size = file.file_size().await?;
        let mut seg = Segment::empty(base_offset, log_path, file, index_interval_bytes, now_ms);
        let mut carry: Vec<u8> = Vec::new();
        let mut carry_pos = 0u64; // file position of carry[0]
        let mut read_pos = 0u64;
        let mut problem: Option<FrameProblem> = None;
        // The scan gives its core up between batches once it has held it for a slice: a
        // cleaned copy is checked while the partition serves appends and fetches.
        let slice = crate::storage::compact::Slice::default();
        'scan: while read_pos < file_size {
            let want = SCAN_CHUNK_BYTES.min((file_size - read_pos) as usize);
            let chunk = seg
                .file
                .read_at_aligned(read_pos, super::stage::align_up(want as u64) as usize)
                .await?;
            let got = chunk.len().min(want);
            if got == 0 {
                break;
            }
            carry.extend_from_slice(&chunk[..got]);
            read_pos += got as u64;
            let mut at = 0usize;
            loop {
                match check_frame(&carry[at..]) {
                    Ok(h)
                        if h.base_offset == seg.next_offset
                            || (allow_gaps && h.base_offset > seg.next_offset) =>
                    {
                        let n = h.total_size();
                        seg.track(&h, carry_pos + at as u64);
                        seg.size += n as u64;
                        at += n;
                        slice.pause().await;
                    }
                    Ok(h) => {
                        problem = Some(FrameProblem::BadCount {
                            count: h.record_count,
                            last_offset_delta: h.last_offset_delta,
                        });
                        tracing::warn!(segment = %seg.log_path.display(), expected = seg.next_offset, found = h.base_offset, "offset discontinuity");
                        break 'scan;
                    }
                    Err(FrameProblem::Truncated { .. }) if read_pos < file_size => break,
                    Err(p) => {
                        if at < carry.len() {
                            problem = Some(p);
                        }
                        break 'scan;
                    }
                }
            }
            carry.drain(..at);
            carry_pos += at as u64;
        }
        if problem.is_none() && !carry.is_empty() {
            problem = check_frame(&carry).err();
        }
        let valid = seg.size;
        let cut_bytes = file_size - valid;
        let mut cut_nonzero = false;
        if cut_bytes > 0 {
            let tail = seg
                .file
                .read_at(valid, cut_bytes.min(MAX_READ_BYTES as u64) as usize)
                .await?;
            cut_nonzero = tail.iter().any(|b| *b != 0);
            seg.file.truncate(valid).await?;
            seg.file.fdatasync().await?;
        }
        seg.written = valid;
        let tail_start = align_down(valid);
        let tail = if valid > tail_start {
            seg.file
                .read_at(tail_start, (valid - tail_start) as usize)
                .await?
                .to_vec()
        } else {
            Vec::new()
        };
        seg.stage = Some(Stage::new(valid, &tail)?);
        let report = ScanReport {
            valid_bytes: valid,
            cut_bytes,
            cut_nonzero,
            problem: problem.map(|p| p.to_string()),
        };
        Ok((seg, report))
    }

    /// Updates counters and indexes for a batch placed at `position`.
    fn track(&mut self, h: &BatchHeader, position: u64) {
        if position == 0 {
            self.first_batch_timestamp = Some(h.max_timestamp);
        }
        let rel = (h.base_offset - self.base_offset) as u32;
        if position > 0 && self.bytes_since_index_entry >= self.index_interval_bytes {
            self.offset_index.push(OffsetEntry {
                relative_offset: rel,
                position: position as u32,
            });
            self.push_time_entry();
            self.bytes_since_index_entry = 0;
        }
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.last_offset();
        }
        self.bytes_since_index_entry += h.total_size() as u64;
        self.next_offset = h.next_offset();
    }

    fn push_time_entry(&mut self) {
        let newer = self
            .time_index
            .last()
            .is_none_or(|t| self.max_timestamp > t.timestamp);
        if newer && self.max_timestamp >= 0 {
            let rel = (self.offset_of_max_timestamp - self.base_offset) as u32;
            if self
                .time_index
                .last()
                .is_none_or(|t| rel > t.relative_offset || self.max_timestamp > t.timestamp)
            {
                self.time_index.push(TimeEntry {
                    timestamp: self.max_timestamp,
                    relative_offset: rel,
                });
            }
        }
    }

    /// Stages a validated batch whose base offset was already set to `next_offset`.
    pub fn append(&mut self, batch: &[u8], h: &BatchHeader) -> Result<()> {
        assert_eq!(
            h.base_offset, self.next_offset,
            "batches must be appended densely"
        );
        let stage = self.stage.as_mut().ok_or(StorageError::Closed)?;
        stage.push(batch)?;
        let position = self.size;
        self.track(h, position);
        self.size += batch.len() as u64;
        debug_assert_eq!(self.size, self.stage.as_ref().map(|s| s.end()).unwrap_or(0));
        Ok(())
    }

    /// The writes that put every staged byte on disk, and the file to submit them to.
    pub fn take_writes(&mut self) -> Result<(Rc<DmaFile>, Vec<Write>)> {
        let writes = match self.stage.as_mut() {
            Some(s) => s.take_writes()?,
            None => Vec::new(),
        };
        Ok((self.file.clone(), writes))
    }

    /// How far the file must be allocated before `writes` go out (`None`: it already is).
    pub fn allocation_for(&mut self, writes: &[Write]) -> Option<u64> {
        let end = writes.iter().map(|w| w.pos + w.buf.len() as u64).max()?;
        if end <= self.allocated {
            return None;
        }
        use crate::limits::{MAX_PREALLOCATE_BYTES, MIN_PREALLOCATE_BYTES};
        let ahead = end.clamp(MIN_PREALLOCATE_BYTES, MAX_PREALLOCATE_BYTES);
        self.allocated = (end + ahead).div_ceil(MIN_PREALLOCATE_BYTES) * MIN_PREALLOCATE_BYTES;
        Some(self.allocated)
    }

    /// Records that bytes up to `end` are on the device.
    pub fn mark_written(&mut self, end: u64) {
        assert!(end <= self.size, "written past the logical end");
        self.written = self.written.max(end);
    }

    /// Seals the segment after all its bytes were written and synced: trims the page padding,
    /// writes the indexes. It stays readable.
    pub async fn seal(&mut self, dir: &Path) -> Result<()> {
        self.begin_seal(dir)?.finish().await
    }

    /// The in-memory half of [`Self::seal`]: the segment is sealed at once (no stage, final
    /// time entry, indexes archived) and stays readable; the returned I/O (trim, sync, index
    /// files) needs no access to it, so a log can seal a segment without taking it out of its
    /// segment map across the I/O (readers would find its offsets gone meanwhile).
    pub fn begin_seal(&mut self, dir: &Path) -> Result<SealIo> {
        assert_eq!(self.written, self.size, "seal before every byte is written");
        // Final time entry so that the sealed index knows the segment's largest timestamp.
        let rel = (self.offset_of_max_timestamp - self.base_offset) as u32;
        if self.max_timestamp >= 0
            && self
                .time_index
                .last()
                .is_none_or(|t| self.max_timestamp > t.timestamp && rel > t.relative_offset)
        {
            self.time_index.push(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset: rel,
            });
        }
        let (index, time) = self.archive_indexes(dir)?;
        self.stage = None;
        Ok(SealIo {
            file: self.file.clone(),
            size: self.size,
            index,
            time,
        })
    }

    /// The indexes archived (sealed in memory), with the files their bytes go to (they are
    /// derived data: written without fsync, a torn one is rebuilt on open).
    #[allow(clippy::type_complexity)]
    fn archive_indexes(&mut self, dir: &Path) -> Result<((PathBuf, Vec<u8>), (PathBuf, Vec<u8>))> {
        let (_, index_path, time_path) = Self::paths(dir, self.base_offset);
        let enc = |e: rkyv::rancor::Error| StorageError::Encode {
            what: "an index",
            reason: e.to_string(),
        };
        let ib = self.offset_index.seal().map_err(enc)?;
        let tb = self.time_index.seal().map_err(enc)?;
        Ok(((index_path, ib), (time_path, tb)))
    }

    /// Where to start reading for `offset`: the position of the indexed batch at or before it.
    pub fn position_for(&self, offset: i64) -> u64 {
        let rel = offset - self.base_offset;
        self.offset_index
            .floor(rel)
            .map(|e| e.position as u64)
            .unwrap_or(0)
    }

    /// Offset from which to scan for the first record with timestamp ≥ `ts`.
    pub fn offset_for_timestamp(&self, ts: i64) -> i64 {
        self.time_index
            .floor(ts.saturating_sub(1))
            .map(|e| self.base_offset + e.relative_offset as i64)
            .unwrap_or(self.base_offset)
    }

    /// Reads whole on-disk bytes `[pos, pos+len)`, clamped to what is written.
    pub async fn read(file: Rc<DmaFile>, pos: u64, len: usize) -> Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let r = file.read_at(pos, len).await?;
        // One copy out of the DMA buffer: `ReadResult` is tied to this executor.
        Ok(Bytes::copy_from_slice(&r))
    }

    pub fn file(&self) -> Rc<DmaFile> {
        self.file.clone()
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn written(&self) -> u64 {
        self.written
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    /// The last offset of the (first) batch holding [`Self::max_timestamp`].
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }
    /// The first batch's max timestamp, when known without a read.
    pub fn known_first_batch_timestamp(&self) -> Option<i64> {
        self.first_batch_timestamp
            .or((self.size == 0).then_some(-1))
    }
    /// Remembers the first batch's max timestamp read by the caller.
    pub fn set_first_batch_timestamp(&mut self, ts: i64) {
        self.first_batch_timestamp = Some(ts);
    }
    pub fn is_active(&self) -> bool {
        self.stage.is_some()
    }
    pub fn pending_bytes(&self) -> u64 {
        self.stage.as_ref().map(|s| s.pending_bytes()).unwrap_or(0)
    }
    pub fn index_entries(&self) -> (Vec<OffsetEntry>, Vec<TimeEntry>) {
        (self.offset_index.entries(), self.time_index.entries())
    }

    /// Makes a sealed segment end at `next_offset`, the next segment's base: the cleaner may
    /// have removed its last records (their offsets stay taken, as a gap).
    pub fn end_at(&mut self, next_offset: i64) {
        debug_assert!(self.stage.is_none() || next_offset >= self.next_offset);
        self.next_offset = self.next_offset.max(next_offset);
    }

    /// Points the segment at its file's new name (the file was renamed, same inode).
    pub fn renamed(&mut self, log_path: PathBuf) {
        self.log_path = log_path;
    }

    /// Deletes the segment's files.
    pub fn remove_files(&self, dir: &Path) -> Result<()> {
        let (l, i, t) = Self::paths(dir, self.base_offset);
        for p in [l, i, t] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// The file I/O of sealing a segment ([`Segment::begin_seal`]): trim the file to its size and
/// sync it, then write the index files (megabytes for a full segment: on the blocking pool,
/// off the core).
#[must_use = "the segment is not sealed on disk until the I/O is done"]
pub struct SealIo {
    file: Rc<DmaFile>,
    size: u64,
    index: (PathBuf, Vec<u8>),
    time: (PathBuf, Vec<u8>),
}

impl SealIo {
    pub async fn finish(self) -> Result<()> {
        self.file.truncate(self.size).await?;
        self.file.fdatasync().await?;
        write_index_files(self.index, self.time).await
    }
}

async fn write_index_files(index: (PathBuf, Vec<u8>), time: (PathBuf, Vec<u8>)) -> Result<()> {
    glommio::executor()
        .spawn_blocking(move || -> std::io::Result<()> {
            std::fs::write(index.0, index.1)?;
            std::fs::write(time.0, time.1)
        })
        .await?;
    Ok(())
}

/// Submits `writes` to `file` in order and returns the logical end they cover.
pub async fn submit_writes(file: &DmaFile, writes: Vec<Write>) -> Result<Option<u64>> {
    let mut end = None;
    for w in writes {
        let len = w.buf.len();
        let done = file.write_at(w.buf, w.pos).await?;
        if done != len {
            return Err(StorageError::Io(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                format!("short direct write: {done} of {len} bytes at {}", w.pos),
            )));
        }
        end = Some(w.data_end);
    }
    Ok(end)
}
