//! A partition as the broker sees it: its log, and every decision the log must not make —
//! when appended data is synced (the flush policy), what consumers may read (the high
//! watermark), whether old segments may be deleted (the cleanup policy), idempotent producers'
//! sequences, and consumers long-polling for new data.
//!
//! The log is private: the shard asks the partition for operations (append, commit, fetch,
//! offsets by time, a periodic `tick`, retention), never for the log. This is the object
//! replication will wrap. A partition lives on the core that owns it and is never touched from
//! another thread.

pub mod producer_state;
mod replicated;

pub use replicated::{Election, ReplicaHost};

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use glommio::sync::Semaphore;
use thiserror::Error;

use crate::limits::{CLEANER_READ_BYTES, MAX_WRITE_BEHIND_BYTES, WRITE_BUFFER_BYTES};
use crate::notify::Notify;
use crate::storage::batch::{BatchHeader, ValidBatches};
use crate::storage::compact::records::every_record_has_a_key;
use crate::storage::compact::swap::SwapStep;
use crate::storage::compact::{KeyMap, Slice};
use crate::storage::{
    meta, AppendInfo, CleanLimits, CleanReport, LogConfig, LogScan, PartitionLog, RetentionLimits,
    StorageError,
};
use producer_state::{ProducerState, SequenceError, Snapshot, Verdict, SNAPSHOT_FILE};

#[derive(Debug, Error)]
pub enum PartitionError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("idempotent producer: {0:?}")]
    Sequence(SequenceError),
    #[error("an idempotent produce must carry exactly one batch per partition")]
    ManyIdempotentBatches,
    #[error("cannot encode the producer snapshot: {0}")]
    SnapshotEncode(String),
    /// DeleteRecords on a topic whose cleanup policy does not include `delete` (Kafka:
    /// POLICY_VIOLATION).
    #[error("records cannot be deleted: cleanup.policy is '{0}'")]
    DeleteNotAllowed(String),
    /// DeleteRecords to an offset the partition does not hold yet, or a negative one other
    /// than -1 (Kafka: OFFSET_OUT_OF_RANGE).
    #[error("cannot delete records up to offset {offset}: the high watermark is {high_watermark}")]
    DeleteBeyondHighWatermark { offset: i64, high_watermark: i64 },
    /// This replica does not lead the partition (Kafka: NOT_LEADER_OR_FOLLOWER).
    #[error("not the leader of the partition (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    /// A new leader that has not committed an entry of its own term yet: its high watermark
    /// may still be behind its predecessor's (Kafka: OFFSET_NOT_AVAILABLE, KIP-207).
    #[error("the new leader has not committed an entry of its term yet")]
    LeaderNotReady,
    /// The replica stopped, or the proposal could not be made.
    #[error("replication: {0}")]
    Replication(String),
    /// acks=all with fewer replicas in sync than `min.insync.replicas`: refused before the
    /// append (Kafka: NOT_ENOUGH_REPLICAS).
    #[error("{in_sync} replica(s) in sync, min.insync.replicas is {required}")]
    NotEnoughReplicas { in_sync: usize, required: i32 },
    /// Committed, but the in-sync replicas fell below `min.insync.replicas` meanwhile (Kafka:
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND; the records are in the log).
    #[error(
        "appended, but only {in_sync} replica(s) are in sync (min.insync.replicas {required})"
    )]
    NotEnoughReplicasAfterAppend { in_sync: usize, required: i32 },
    /// The client's `current_leader_epoch` is older than the leader's (Kafka:
    /// FENCED_LEADER_EPOCH, KIP-320): its metadata is stale.
    #[error("leader epoch {asked} is older than the current {current}")]
    FencedLeaderEpoch { asked: i32, current: i32 },
    /// The client's `current_leader_epoch` is newer than this replica knows (Kafka:
    /// UNKNOWN_LEADER_EPOCH): this broker is behind.
    #[error("leader epoch {asked} is newer than the current {current}")]
    UnknownLeaderEpoch { asked: i32, current: i32 },
    #[error("{0} is not supported on a replicated partition yet")]
    NotSupportedReplicated(&'static str),
}

/// What a produce waits for before it is answered (Kafka's `acks`). Only a replicated
/// partition tells them apart: alone, a broker's own append is everything there is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// acks=0 or 1: the leader's own append (durable as its flush policy says).
    Leader,
    /// acks=all: a majority of the replicas has the batch on disk, with at least
    /// `min.insync.replicas` in sync.
    All,
}

impl Acks {
    /// Kafka's `acks` field (-1 is all; 0 and 1 wait for the leader alone).
    pub fn from_kafka(acks: i16) -> Acks {
        if acks == -1 {
            Acks::All
        } else {
            Acks::Leader
        }
    }
}

/// A produce between [`Partition::stage`] and [`Partition::complete`].
pub enum Staged {
    /// In the log at these offsets (durable once completed).
    Appended(AppendInfo),
    /// Queued for proposal to the partition's Raft group; its offsets come with the answers.
    Proposed {
        proposal: replicated::Proposal,
        acks: Acks,
    },
}

/// The cleaner's dirty point of a partition (an `i64`, written atomically with a CRC).
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner.checkpoint";

/// DeleteRecords' offset meaning "up to the high watermark".
pub const DELETE_TO_HIGH_WATERMARK: i64 = -1;

/// What a fetch found in one partition.
#[derive(Debug, Default)]
pub struct Fetched {
    pub high_watermark: i64,
    pub log_start: i64,
    /// Whole stored batches, in as few contiguous slices as the log could give.
    pub chunks: Vec<Bytes>,
}

/// Where a ListOffsets lookup points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetQuery {
    /// The high watermark (Kafka's LATEST, -1).
    Latest,
    /// The log start (Kafka's EARLIEST, -2).
    Earliest,
    /// The first record at or after this timestamp.
    Timestamp(i64),
    /// The record with the largest timestamp (Kafka's MAX_TIMESTAMP, -3).
    MaxTimestamp,
}

/// Offsets and sizes of a partition's log, for tools and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionStats {
    pub log_start: i64,
    pub log_end: i64,
    pub high_watermark: i64,
    /// Below it, everything is written to the file (synced or not).
    pub written: i64,
    /// Below it, everything is synced.
    pub flushed: i64,
    /// Appended bytes not yet written to the file.
    pub staged_bytes: u64,
    pub segments: usize,
    pub size_bytes: u64,
}

pub struct Partition {
    /// Shared only with the partition's replica device, which stores what Raft commits.
    log: Rc<PartitionLog>,
    /// Fired whenever new data becomes readable.
    data: Notify,
    producers: RefCell<ProducerState>,
    /// Serializes check-append-record for idempotent batches (plain batches skip it).
    sequencing: Semaphore,
    /// Serialises producer snapshot writes.
    snapshot_writes: Semaphore,
    /// The partition's Raft group, when it is replicated: then the group decides what is
    /// appended (the leader proposes, every replica stores what is committed) and what is
    /// visible (the commit point), and the flush policy is the replica's (see
    /// [`replicated`]).
    replica: RefCell<Option<replicated::Attached>>,
    /// The leader term whose log the producer state was rebuilt from (replicated only).
    producers_term: Cell<u64>,
    /// Active segment base when the producer state was last snapshotted.
    snapshot_base: Cell<i64>,
    /// A write-out runs behind the acknowledgements (relaxed flush policies).
    writing_behind: Cell<bool>,
    /// The cleaner's dirty point: offsets below it were compacted by an earlier pass (kept
    /// in [`CLEANER_CHECKPOINT_FILE`], Kafka's `cleaner-offset-checkpoint`).
    first_dirty: Cell<i64>,
    /// When the last clean ended (ms) and what it did.
    last_clean: RefCell<Option<(i64, CleanReport)>>,
    /// Replicated only: each idempotent producer's last committed batch (producer id → base
    /// offset), from the committed batches read so far (below `.0`). The cleaner keeps these
    /// batches (emptied if need be, Kafka's `RETAIN_EMPTY`), so a producer's last sequence
    /// stays in the log whichever replica cleaned it and whichever later leads (a follower's
    /// `producers` is not kept up to date: only a leader sequences).
    committed_producers: RefCell<(i64, HashMap<i64, i64>)>,
}

/// What tools see of a partition's compaction.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerState {
    /// `dirty / (clean + dirty)` bytes of the cleanable log (sealed segments below the high
    /// watermark); 0 when there is nothing cleanable.
    pub dirty_ratio: f64,
    pub first_dirty: i64,
    pub last_clean: Option<(i64, CleanReport)>,
}

impl Partition {
    /// Wraps an opened log, rebuilding producer state from its snapshot and the batches after it.
    pub async fn open(log: PartitionLog) -> Result<Rc<Partition>, PartitionError> {
        let (start, end) = (log.log_start(), log.log_end());
        let snapshot = meta::read_checked(&log.dir().join(SNAPSHOT_FILE))
            .ok()
            .flatten()
            .and_then(|b| Snapshot::decode(&b));
        let (mut state, offset) = match snapshot {
            // A snapshot past the end describes batches recovery cut away: not usable.
            Some(s) if s.offset <= end => (ProducerState::from_snapshot(&s), s.offset.max(start)),
            _ => (ProducerState::default(), start),
        };
        let mut scan = log.scan(offset, end);
        while let Some(batch) = scan.next().await? {
            if let Some(h) = BatchHeader::parse(&batch) {
                if h.next_offset() > offset {
                    state.record(&h, h.base_offset);
                }
            }
        }
        let base = log.active_base();
        let first_dirty = meta::read_checked(&log.dir().join(CLEANER_CHECKPOINT_FILE))
            .ok()
            .flatten()
            .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
            .map(i64::from_le_bytes)
            .unwrap_or(start)
            .clamp(start, end);
        Ok(Rc::new(Partition {
            log: Rc::new(log),
            data: Notify::default(),
            replica: RefCell::new(None),
            producers_term: Cell::new(0),
            producers: RefCell::new(state),
            sequencing: Semaphore::new(1),
            snapshot_writes: Semaphore::new(1),
            snapshot_base: Cell::new(base),
            writing_behind: Cell::new(false),
            first_dirty: Cell::new(first_dirty),
            last_clean: RefCell::new(None),
            committed_producers: RefCell::new((start, HashMap::new())),
        }))
    }

    /// Appends and, per the flush policy, syncs before returning (the caller acknowledges
    /// only after this returns): [`Self::append`] then [`Self::commit`].
    pub async fn produce(self: &Rc<Self>, records: Bytes) -> Result<AppendInfo, PartitionError> {
        let info = self.append(records, Acks::All).await?;
        self.commit(&info).await?;
        Ok(info)
    }

    /// A produce in two halves: [`Self::stage`] takes the batches in order (once it returns, a
    /// later produce lands after this one), [`Self::complete`] waits until they are durable
    /// as `acks` asks and says where they are. A connection reads its next request between
    /// the two.
    pub async fn stage(&self, records: Bytes, acks: Acks) -> Result<Staged, PartitionError> {
        if let Some(group) = self.group() {
            return self.stage_replicated(&group, records, acks).await;
        }
        Ok(Staged::Appended(self.append(records, acks).await?))
    }

    /// The second half of [`Self::stage`].
    pub async fn complete(self: &Rc<Self>, staged: Staged) -> Result<AppendInfo, PartitionError> {
        match staged {
            Staged::Appended(info) => {
                self.commit(&info).await?;
                Ok(info)
            }
            Staged::Proposed { proposal, acks } => {
                let group = self
                    .group()
                    .ok_or(PartitionError::NotLeader { leader: None })?;
                let info = self.complete_replicated(&group, proposal, acks).await;
                self.data.notify();
                info
            }
        }
    }

    /// The ordered half of a produce: validates the batches (once), assigns offsets and stages
    /// them. Batches of idempotent producers are checked against the producer's sequence
    /// first: a retry gets its original offsets back and is not written again. Appends take
    /// effect in the order they are called, so once this returns a later produce lands after
    /// this one.
    pub async fn append(&self, records: Bytes, acks: Acks) -> Result<AppendInfo, PartitionError> {
        if let Some(group) = self.group() {
            return self.append_replicated(&group, records, acks).await;
        }
        let batches = self.validate(records)?;
        let h = batches.headers()[0];
        if h.producer_id < 0 {
            let info = self.log.append_valid(batches).await?;
            self.snapshot_on_roll().await;
            return Ok(info);
        }
        if batches.headers().len() > 1 {
            return Err(PartitionError::ManyIdempotentBatches);
        }
        let _turn = self
            .sequencing
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed)?;
        let verdict = self.producers.borrow().check(&h);
        match verdict {
            Verdict::Refuse(e) => Err(PartitionError::Sequence(e)),
            // The original may still be on its way to the disk: `commit` waits for it.
            Verdict::Duplicate { base_offset } => Ok(AppendInfo {
                base_offset,
                last_offset: base_offset + h.last_offset_delta as i64,
                log_append_time: -1,
                record_count: h.record_count as i64,
            }),
            Verdict::Append => {
                let info = self.log.append_valid(batches).await?;
                self.producers.borrow_mut().record(&h, info.base_offset);
                self.snapshot_on_roll().await;
                Ok(info)
            }
        }
    }

    /// The durable half of a produce: syncs what [`Self::append`] staged as the flush policy
    /// asks (concurrent commits share one sync) and wakes consumers waiting for the data.
    ///
    /// Under a policy that does not sync this append, a full write buffer is written out in
    /// the background: the acknowledgement does not wait for a write it does not promise,
    /// unless the disk has fallen [`MAX_WRITE_BEHIND_BYTES`] behind.
    pub async fn commit(self: &Rc<Self>, info: &AppendInfo) -> Result<(), PartitionError> {
        if self.group().is_some() {
            // A replicated append returned once committed.
            self.data.notify();
            return Ok(());
        }
        let staged = self.log.staged_bytes();
        if self.syncs_every_append() || self.flush_due() {
            self.log.flush(info.last_offset + 1).await?;
        } else if staged >= MAX_WRITE_BEHIND_BYTES as u64 {
            self.log.write_out().await?;
        } else if staged >= WRITE_BUFFER_BYTES as u64 && !self.writing_behind.replace(true) {
            let p = self.clone();
            glommio::spawn_local(async move {
                match p.log.write_out().await {
                    // Closed meanwhile: the close wrote everything out.
                    Ok(()) | Err(StorageError::Closed) => {}
                    // The log now refuses appends; producers learn of it from those.
                    Err(e) => {
                        tracing::warn!(dir = %p.log.dir().display(), error = %e, "write-out failed")
                    }
                }
                p.writing_behind.set(false);
            })
            .detach();
        }
        self.data.notify();
        Ok(())
    }

    /// The checks every produce passes before anything is appended: framing and size, the
    /// timestamp window, keys on a compacted topic.
    fn validate(&self, records: Bytes) -> Result<ValidBatches, PartitionError> {
        let batches = ValidBatches::check(records, self.log.max_message_bytes())?;
        self.check_timestamps(&batches)?;
        if self.log.compacts() {
            let (bytes, headers) = (batches.clone().into_parts().0, batches.headers());
            if !every_record_has_a_key(&bytes, headers)? {
                return Err(StorageError::InvalidRecord(
                    "a compacted topic refuses records without a key".into(),
                )
                .into());
            }
        }
        Ok(batches)
    }

    /// Kafka's timestamp window under CreateTime (`message.timestamp.before.max.ms`,
    /// `message.timestamp.after.max.ms`), judged on each batch's first and largest timestamp
    /// (the header's; the records' own are not decoded).
    fn check_timestamps(&self, batches: &ValidBatches) -> Result<(), StorageError> {
        let (before, after) = self.log.timestamp_window();
        let now = self.log.now_ms();
        let earliest = now.saturating_sub(before);
        let latest = now.saturating_add(after);
        for h in batches.headers() {
            for timestamp in [h.base_timestamp, h.max_timestamp] {
                if timestamp >= 0 && (timestamp < earliest || timestamp > latest) {
                    return Err(StorageError::InvalidTimestamp {
                        timestamp,
                        earliest,
                        latest,
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether the topic's flush policy syncs every append before it is acknowledged.
    fn syncs_every_append(&self) -> bool {
        self.log.flush_policy().syncs_every_append()
    }

    /// Whether the flush policy asks for a sync now: `flush.messages` records or a record
    /// older than `flush.ms` not yet synced.
    fn flush_due(&self) -> bool {
        let flush = self.log.flush_policy();
        let (messages, oldest) = self.log.unflushed();
        messages >= flush.messages
            || oldest.is_some_and(|t| self.log.now_ms().saturating_sub(t) >= flush.ms)
    }

    /// What consumers may read: synced data when every append is synced before its ack,
    /// otherwise the log end (durability was traded away by the topic's flush policy).
    pub fn high_watermark(&self) -> i64 {
        if let Some(group) = self.group() {
            return group.published().high_watermark;
        }
        if self.syncs_every_append() {
            self.log.flushed_offset()
        } else {
            self.log.log_end()
        }
    }

    pub fn log_start(&self) -> i64 {
        self.log.log_start()
    }

    /// Whole batches from the one holding `offset`, at most `max_bytes` (at least one batch),
    /// never beyond the high watermark.
    /// `epoch`: the client's `current_leader_epoch` (-1: not checked; KIP-320).
    pub async fn fetch(
        &self,
        offset: i64,
        max_bytes: usize,
        epoch: i32,
    ) -> Result<Fetched, PartitionError> {
        self.check_readable()?;
        self.check_leader_epoch(epoch)?;
        let hw = self.high_watermark();
        let read = self.log.read(offset, max_bytes, hw).await?;
        Ok(Fetched {
            high_watermark: hw,
            log_start: self.log.log_start(),
            chunks: read.chunks,
        })
    }

    /// Every readable batch from `from` to the high watermark (see [`LogScan`]).
    pub fn scan(&self, from: i64) -> LogScan<'_> {
        self.log.scan(from, self.high_watermark())
    }

    /// The offset (and timestamp, -1 when not a time lookup) a ListOffsets query points to;
    /// `None` when no record is as recent as the timestamp asked for.
    pub async fn offset_for(
        &self,
        query: OffsetQuery,
        epoch: i32,
    ) -> Result<Option<(i64, i64)>, PartitionError> {
        self.check_readable()?;
        self.check_leader_epoch(epoch)?;
        Ok(match query {
            OffsetQuery::Latest => Some((self.high_watermark(), -1)),
            OffsetQuery::Earliest => Some((self.log.log_start(), -1)),
            OffsetQuery::Timestamp(ts) => {
                self.log
                    .offset_for_timestamp(ts, self.high_watermark())
                    .await?
            }
            OffsetQuery::MaxTimestamp => {
                self.log
                    .offset_of_max_timestamp(self.high_watermark())
                    .await?
            }
        })
    }

    /// Periodic work: syncs what the flush policy says is due (`flush.ms` for a quiet
    /// partition) and wakes consumers waiting for it.
    pub async fn tick(&self) {
        if self.group().is_some() {
            return; // the replica syncs what it stores
        }
        if self.log.unflushed().0 > 0 && self.flush_due() {
            if let Err(e) = self.log.flush(self.log.log_end()).await {
                tracing::error!(dir = %self.log.dir().display(), error = %e, "periodic flush failed");
            }
            self.data.notify();
        }
    }

    /// Applies time and size retention if the cleanup policy allows it: a `compact`-only topic
    /// keeps every segment (Kafka's rule; its latest records per key must not be lost to age).
    /// Returns the segments deleted.
    pub async fn enforce_retention(&self) -> Result<usize, PartitionError> {
        let config = self.log.config();
        // Under replication the front of the log is Raft's too: it is not dropped until
        // replicas can be rebuilt from segment files.
        if !config.retention_deletes() || self.group().is_some() {
            return Ok(0);
        }
        let limits = RetentionLimits {
            ms: config.retention_ms,
            bytes: config.retention_bytes,
        };
        Ok(self.log.enforce_retention(limits).await?)
    }

    /// DeleteRecords: makes every record below `offset` unreadable by moving the log start up
    /// to it ([`DELETE_TO_HIGH_WATERMARK`] means the high watermark), as Kafka does: only on a
    /// topic whose cleanup policy includes `delete`, never beyond the high watermark, never
    /// backwards (an offset below the log start changes nothing). Returns the log start
    /// afterwards (Kafka's low watermark), durable once this returns.
    pub async fn delete_records(&self, offset: i64) -> Result<i64, PartitionError> {
        if self.group().is_some() {
            return Err(PartitionError::NotSupportedReplicated("DeleteRecords"));
        }
        let config = self.log.config();
        if !config.retention_deletes() {
            return Err(PartitionError::DeleteNotAllowed(config.cleanup_policy));
        }
        let hw = self.high_watermark();
        let target = if offset == DELETE_TO_HIGH_WATERMARK {
            hw
        } else {
            offset
        };
        if target < 0 || target > hw {
            return Err(PartitionError::DeleteBeyondHighWatermark {
                offset,
                high_watermark: hw,
            });
        }
        let start = self.log.advance_log_start(target).await?;
        tracing::info!(dir = %self.log.dir().display(), log_start = start, "deleted records");
        Ok(start)
    }

    /// The part of the log the cleaner may touch ends at the active segment and at the high
    /// watermark; on a replicated partition also where its Raft group may still read batches
    /// back (`GroupHandle::raft_needs_from`: on the leader the least any peer is known to
    /// hold, on a follower its applied point). The partition decides; replication reports.
    ///
    /// What stays true whatever the group reports later (a follower that leads, a peer that
    /// returns): nothing at or above the commit point is rewritten, so a divergent tail that
    /// Raft cuts and replaces is never a cleaned one; and a peer further behind than a
    /// cleaned stretch is sent the cleaned batches (same offsets, fewer records, as Kafka
    /// followers fetch cleaned segments), a batch dropped whole going as an empty batch over
    /// its offsets (see `EntryStore::keep_fetched`). Records go only when a newer one of their
    /// key is committed, which that peer receives too.
    fn cleanable_upto(&self) -> i64 {
        let upto = self.high_watermark().min(self.log.active_base());
        match self.group() {
            Some(g) => upto.min(g.raft_needs_from()),
            None => upto,
        }
    }

    /// Replicated: each idempotent producer's last committed batch, after reading the
    /// committed batches not read before (once the whole log after a start, then only what
    /// was committed since).
    async fn committed_last_batches(&self) -> Result<HashMap<i64, i64>, PartitionError> {
        let upto = self.high_watermark();
        let from = self
            .committed_producers
            .borrow()
            .0
            .max(self.log.log_start());
        if from < upto {
            let mut seen = HashMap::new();
            let slice = Slice::default();
            let mut scan = self.log.scan_by(from, upto, CLEANER_READ_BYTES);
            while let Some(batch) = scan.next().await? {
                if let Some(h) = BatchHeader::parse(&batch) {
                    if h.producer_id >= 0 && !h.is_control() {
                        seen.insert(h.producer_id, h.base_offset);
                    }
                }
                slice.pause().await;
            }
            drop(scan);
            let mut c = self.committed_producers.borrow_mut();
            c.1.extend(seen);
            c.0 = upto;
        }
        Ok(self.committed_producers.borrow().1.clone())
    }

    /// Whether a dirty sealed segment's first record is older than `max.compaction.lag.ms`:
    /// it is then cleaned whatever the dirty ratio (Kafka's `needCompactionNow`).
    async fn compaction_overdue(&self, config: &LogConfig) -> Result<bool, PartitionError> {
        if config.max_compaction_lag_ms == i64::MAX {
            return Ok(false);
        }
        let earliest = self
            .log
            .earliest_dirty_timestamp(self.cleanable_upto(), self.first_dirty.get())
            .await?;
        let clean_until = self
            .log
            .now_ms()
            .saturating_sub(config.max_compaction_lag_ms);
        Ok(earliest.is_some_and(|ts| ts < clean_until))
    }

    /// Whether the topic's cleanup policy compacts it.
    pub fn compacts(&self) -> bool {
        self.log.compacts()
    }

    /// The cleaner's view of this partition, for tools.
    pub fn cleaner_state(&self) -> CleanerState {
        let (clean, dirty) = self
            .log
            .cleanable_bytes(self.cleanable_upto(), self.first_dirty.get());
        CleanerState {
            dirty_ratio: if clean + dirty == 0 {
                0.0
            } else {
                dirty as f64 / (clean + dirty) as f64
            },
            first_dirty: self.first_dirty.get(),
            last_clean: self.last_clean.borrow().clone(),
        }
    }

    /// Compacts the log if its cleanup policy says so and enough of it is dirty
    /// (`min.cleanable.dirty.ratio`, or a dirty record older than `max.compaction.lag.ms`;
    /// `force` skips that test): one pass of the cleaner with
    /// `map` (its budget bounds the pass), within `min.compaction.lag.ms`, tombstones kept
    /// `delete.retention.ms`. `None` when nothing was due. `failpoint` is for crash tests.
    pub async fn clean(
        &self,
        map: &mut KeyMap,
        force: bool,
        failpoint: Option<SwapStep>,
    ) -> Result<Option<CleanReport>, PartitionError> {
        let config = self.log.config();
        if !config.compacts() {
            return Ok(None);
        }
        let state = self.cleaner_state();
        let due = state.dirty_ratio > 0.0
            && (force
                || state.dirty_ratio >= config.min_cleanable_dirty_ratio
                || self.compaction_overdue(&config).await?);
        if !due {
            return Ok(None);
        }
        // Taken before the committed batches are read: they are read up to the high
        // watermark of now, at least as far.
        let upto = self.cleanable_upto();
        let last_batches = if self.group().is_some() {
            self.committed_last_batches().await?
        } else {
            self.producers.borrow().last_batches()
        };
        let limits = CleanLimits {
            upto,
            first_dirty: self.first_dirty.get().max(self.log.log_start()),
            min_compaction_lag_ms: config.min_compaction_lag_ms,
            delete_retention_ms: config.delete_retention_ms,
            last_batches,
        };
        let report = self.log.clean(&limits, map, failpoint).await?;
        if report.cleaned_upto != self.first_dirty.get() {
            self.first_dirty.set(report.cleaned_upto);
            // Lost in a crash, the next pass only cleans more than it needs to.
            let path = self.log.dir().join(CLEANER_CHECKPOINT_FILE);
            let bytes = report.cleaned_upto.to_le_bytes().to_vec();
            if let Err(e) = meta::write_atomic_off_core(path, bytes).await {
                tracing::warn!(dir = %self.log.dir().display(), error = %e, "cannot store the cleaner's checkpoint");
            }
        }
        tracing::info!(
            dir = %self.log.dir().display(),
            cleaned_upto = report.cleaned_upto,
            segments = report.segments_rewritten,
            merged = report.segments_merged,
            removed = report.records_removed,
            bytes_before = report.bytes_before,
            bytes_after = report.bytes_after,
            "cleaned"
        );
        *self.last_clean.borrow_mut() = Some((self.log.now_ms(), report.clone()));
        Ok(Some(report))
    }

    /// Takes a changed topic config.
    pub fn reconfigure(&self, config: LogConfig) {
        self.log.set_config(config);
        // A relaxed flush policy may make data readable at once.
        self.data.notify();
    }

    /// Arrival stamp of this partition's oldest cached batch that may leave the cache: the
    /// shard trims the partition holding its core's oldest first.
    pub fn oldest_cached(&self) -> Option<u64> {
        self.log.oldest_cached()
    }

    /// Drops about `bytes` of the oldest cached batches that are on disk.
    pub fn evict_cached(&self, bytes: usize) -> usize {
        self.log.evict_cached(bytes)
    }

    pub fn stats(&self) -> PartitionStats {
        PartitionStats {
            log_start: self.log.log_start(),
            log_end: self.log.log_end(),
            high_watermark: self.high_watermark(),
            written: self.log.written_offset(),
            flushed: self.log.flushed_offset(),
            staged_bytes: self.log.staged_bytes(),
            segments: self.log.segment_count(),
            size_bytes: self.log.size_bytes(),
        }
    }

    /// Once per segment (whoever produced), snapshots producer state so that a restart rescans
    /// at most the active segment, not the whole log.
    async fn snapshot_on_roll(&self) {
        let base = self.log.active_base();
        if base != self.snapshot_base.get() {
            self.snapshot_base.set(base);
            if let Err(e) = self.write_snapshot().await {
                tracing::warn!(dir = %self.log.dir().display(), error = %e, "producer snapshot failed; restart will rescan more");
            }
        }
    }

    async fn write_snapshot(&self) -> Result<(), PartitionError> {
        // One writer at a time: they share the temporary file of the atomic replace.
        let _turn = self
            .snapshot_writes
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed)?;
        let snap = self.producers.borrow().to_snapshot(self.log.log_end());
        let bytes = snap
            .encode()
            .map_err(|e| PartitionError::SnapshotEncode(e.to_string()))?;
        Ok(meta::write_atomic_off_core(self.log.dir().join(SNAPSHOT_FILE), bytes.to_vec()).await?)
    }

    /// Flushes, snapshots producer state and closes the log (clean shutdown).
    pub async fn close(&self) -> Result<(), PartitionError> {
        self.detach_replica();
        let _turn = self
            .sequencing
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed)?;
        self.log.flush(self.log.log_end()).await?;
        // Even an empty snapshot matters: it spares the next start a scan of the whole log.
        self.write_snapshot().await?;
        Ok(self.log.close().await?)
    }

    /// Gives the log up for good, writing nothing (the partition is being deleted: a flush
    /// would only delay the deletion, or fail it on a full disk), and wakes every waiter, who
    /// then finds it gone.
    pub fn close_for_removal(&self) {
        self.detach_replica();
        self.log.abandon();
        self.data.notify();
    }

    /// Waits until data beyond `offset` is readable or `wait` passes.
    pub async fn wait_for_data(&self, offset: i64, wait: Duration) {
        if self.high_watermark() > offset {
            return;
        }
        let notified = self.data.notified();
        futures_lite::future::or(notified, async {
            glommio::timer::sleep(wait).await;
        })
        .await;
    }
}
