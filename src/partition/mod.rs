//! A partition as the broker sees it: its log plus what the log must not know about —
//! when to sync per the flush policy, idempotent producers' sequences, and consumers
//! long-polling for new data.
//!
//! A partition lives on the core that owns it and is never touched from another thread.

pub mod producer_state;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use glommio::sync::Semaphore;
use thiserror::Error;

use crate::limits::MAX_WRITE_BEHIND_BYTES;
use crate::notify::Notify;
use crate::storage::batch::{iter_batches, BatchHeader};
use crate::storage::{meta, AppendInfo, PartitionLog, StorageError};
use producer_state::{ProducerState, SequenceError, Snapshot, Verdict, SNAPSHOT_FILE};

/// Bytes read per step while rebuilding producer state from the log.
const REBUILD_READ_BYTES: usize = 4 << 20;

#[derive(Debug, Error)]
pub enum PartitionError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("idempotent producer: {0:?}")]
    Sequence(SequenceError),
    #[error("an idempotent produce must carry exactly one batch per partition")]
    ManyIdempotentBatches,
}

pub struct Partition {
    pub log: PartitionLog,
    /// Fired whenever new data becomes readable.
    pub data: Notify,
    producers: RefCell<ProducerState>,
    /// Serializes check-append-record for idempotent batches (plain batches skip it).
    sequencing: Semaphore,
    /// Serialises producer snapshot writes.
    snapshot_writes: Semaphore,
    /// Active segment base when the producer state was last snapshotted.
    snapshot_base: Cell<i64>,
    /// A write-out runs behind the acknowledgements (relaxed flush policies).
    writing_behind: Cell<bool>,
}

impl Partition {
    /// Wraps an opened log, rebuilding producer state from its snapshot and the batches after it.
    pub async fn open(log: PartitionLog) -> Result<Rc<Partition>, PartitionError> {
        let (start, end) = (log.log_start(), log.log_end());
        let snapshot = meta::read_checked(&log.dir().join(SNAPSHOT_FILE))
            .ok()
            .flatten()
            .and_then(|b| Snapshot::decode(&b));
        let (mut state, mut offset) = match snapshot {
            // A snapshot past the end describes batches recovery cut away: not usable.
            Some(s) if s.offset <= end => (ProducerState::from_snapshot(&s), s.offset.max(start)),
            _ => (ProducerState::default(), start),
        };
        while offset < end {
            let read = log.read(offset, REBUILD_READ_BYTES, end).await?;
            if read.is_empty() {
                break;
            }
            for chunk in &read.chunks {
                for (_, h) in iter_batches(chunk) {
                    if h.next_offset() > offset {
                        state.record(&h, h.base_offset);
                        offset = h.next_offset();
                    }
                }
            }
        }
        let base = log.active_base();
        Ok(Rc::new(Partition {
            log,
            data: Notify::default(),
            producers: RefCell::new(state),
            sequencing: Semaphore::new(1),
            snapshot_writes: Semaphore::new(1),
            snapshot_base: Cell::new(base),
            writing_behind: Cell::new(false),
        }))
    }

    /// Appends and, per the flush policy, syncs before returning (the caller acknowledges
    /// only after this returns): [`Self::append`] then [`Self::commit`].
    pub async fn produce(self: &Rc<Self>, records: &[u8]) -> Result<AppendInfo, PartitionError> {
        let info = self.append(Bytes::copy_from_slice(records)).await?;
        self.commit(&info).await?;
        Ok(info)
    }

    /// The ordered half of a produce: assigns offsets and stages the batches. Batches of
    /// idempotent producers are checked against the producer's sequence first: a retry gets
    /// its original offsets back and is not written again. Appends take effect in the order
    /// they are called, so once this returns a later produce lands after this one.
    pub async fn append(&self, records: Bytes) -> Result<AppendInfo, PartitionError> {
        let idempotent = BatchHeader::parse(&records).is_some_and(|h| h.producer_id >= 0);
        if !idempotent {
            let info = self.log.append_bytes(records).await?;
            self.snapshot_on_roll().await;
            return Ok(info);
        }
        let _turn = self
            .sequencing
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed)?;
        let h = {
            let mut batches = iter_batches(&records);
            let (_, h) = batches
                .next()
                .ok_or_else(|| StorageError::InvalidRecord("empty produce".into()))?;
            if batches.next().is_some() {
                return Err(PartitionError::ManyIdempotentBatches);
            }
            h
        };
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
                let info = self.log.append_bytes(records).await?;
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
        if self.log.sync_every_append() || self.log.flush_due() {
            self.log.flush(info.last_offset + 1).await?;
        } else if self.log.staged_bytes() >= MAX_WRITE_BEHIND_BYTES as u64 {
            self.log.write_out().await?;
        } else if self.log.write_out_due() && !self.writing_behind.replace(true) {
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

    async fn write_snapshot(&self) -> Result<(), StorageError> {
        // One writer at a time: they share the temporary file of the atomic replace.
        let _turn = self
            .snapshot_writes
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed)?;
        let snap = self.producers.borrow().to_snapshot(self.log.log_end());
        let bytes = snap
            .encode()
            .map_err(|e| StorageError::InvalidConfig(format!("encode producer snapshot: {e}")))?;
        meta::write_atomic_off_core(self.log.dir().join(SNAPSHOT_FILE), bytes.to_vec()).await
    }

    /// Flushes, snapshots producer state and closes the log (clean shutdown).
    pub async fn close(&self) -> Result<(), StorageError> {
        let _turn = self
            .sequencing
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed)?;
        self.log.flush(self.log.log_end()).await?;
        // Even an empty snapshot matters: it spares the next start a scan of the whole log.
        self.write_snapshot().await?;
        self.log.close().await
    }

    /// Waits until data beyond `offset` is readable or `wait` passes.
    pub async fn wait_for_data(&self, offset: i64, wait: Duration) {
        if self.log.high_watermark() > offset {
            return;
        }
        let notified = self.data.notified();
        futures_lite::future::or(notified, async {
            glommio::timer::sleep(wait).await;
        })
        .await;
    }
}
