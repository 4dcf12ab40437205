//! Appending: offsets assigned, the broker's header fields stamped, batches staged in the
//! active segment and kept in the tail cache; rolling to a new segment by size, age or offset
//! range.

use bytes::{Bytes, BytesMut};

use super::{AppendInfo, PartitionLog};
use crate::storage::batch::{set_base_offset, set_log_append_time, BatchHeader, ValidBatches};
use crate::storage::config::{LogConfig, TimestampType};
use crate::storage::error::{Result, StorageError};
use crate::storage::segment::Segment;
use crate::storage::tail_cache::CachedBatch;

impl PartitionLog {
    /// Validates the batches in `payload` and appends them, assigning offsets. Either every
    /// batch is appended or none. The data is staged in memory: call [`Self::flush`] to make it
    /// durable (the partition decides when, per its flush policy).
    pub async fn append(&self, payload: &[u8]) -> Result<AppendInfo> {
        self.append_bytes(Bytes::copy_from_slice(payload)).await
    }

    /// [`Self::append`] of bytes the caller gives up: when nothing else references their buffer
    /// (a produce request's frame carrying one partition) the batches are stamped and cached in
    /// place, without the copy `append` makes.
    pub async fn append_bytes(&self, payload: Bytes) -> Result<AppendInfo> {
        let batches = ValidBatches::check(payload, self.max_message_bytes())?;
        self.append_valid(batches).await
    }

    /// Appends batches validated by the caller ([`ValidBatches::check`] against this log's
    /// `max.message.bytes`), assigning offsets; either every batch is appended or none.
    pub async fn append_valid(&self, batches: ValidBatches) -> Result<AppendInfo> {
        self.check_writable()?;
        let timestamp_type = self.config.borrow().timestamp_type;
        let incoming = batches.len() as u64;
        let incoming_records = batches.record_count();
        let (payload, headers) = batches.into_parts();
        self.roll_while_needed(incoming, incoming_records).await?;
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

    /// Appends one batch exactly as given, already stamped with its offset by someone else
    /// (a replica storing the leader's batch): nothing is rewritten, so every replica holds
    /// the same bytes, and the buffer is kept, not copied, in the tail cache. The batch must
    /// be one whole v2 batch starting at the log end.
    pub async fn append_stored(&self, batch: Bytes) -> Result<AppendInfo> {
        self.check_writable()?;
        let h = crate::storage::batch::check_frame(&batch)
            .ok()
            .filter(|h| h.total_size() == batch.len())
            .ok_or_else(|| StorageError::Corrupt("a stored batch is not one whole batch".into()))?;
        self.roll_while_needed(batch.len() as u64, h.record_count as i64)
            .await?;
        let now = self.clock.now_ms();
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        let first = st.log_end();
        if h.base_offset != first {
            return Err(StorageError::Corrupt(format!(
                "a stored batch at offset {} where the log ends at {first}",
                h.base_offset
            )));
        }
        if st.active().size() == 0 {
            st.active_mut().created_ms = now;
        }
        st.active_mut().append(&batch, &h)?;
        let len = batch.len();
        st.tail.push(CachedBatch {
            base: first,
            next: h.next_offset(),
            parent: batch,
            start: 0,
            end: len,
        });
        st.unflushed_messages += h.record_count as u64;
        st.oldest_unflushed_ms.get_or_insert(now);
        st.tail.evict(st.written_offset);
        Ok(AppendInfo {
            base_offset: first,
            last_offset: h.last_offset(),
            log_append_time: -1,
            record_count: h.record_count as i64,
        })
    }

    /// Rolls the active segment (waiting for a roll in progress) until it can take `incoming`
    /// bytes holding `records` records.
    async fn roll_while_needed(&self, incoming: u64, records: i64) -> Result<()> {
        loop {
            let now = self.clock.now_ms();
            let must_roll = {
                let st = self.state.borrow();
                st.rolling || needs_roll(st.active(), &self.config.borrow(), now, incoming, records)
            };
            if !must_roll {
                return Ok(());
            }
            self.roll_if_needed(incoming, records).await?;
        }
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
        // Sealed where it is: taken out of the segment map across the sealing I/O, its
        // offsets would be gone meanwhile (the log end moves back, fetches there are out of
        // range; with no other segment, there is no log at all).
        let (base, sealing) = {
            let mut st = self.state.borrow_mut();
            let next = st.log_end();
            (next, st.active_mut().begin_seal(&self.dir)?)
        };
        sealing.finish().await?;
        let interval = self.config.borrow().index_interval_bytes;
        let seg = Segment::create(&self.dir, base, interval, now).await?;
        self.state.borrow_mut().segments.insert(base, seg);
        self.store_meta().await?;
        tracing::debug!(dir = %self.dir.display(), base, "rolled segment");
        Ok(())
    }
}

/// Whether the active segment must roll before taking `bytes` more bytes holding `records`
/// records: it is full (`segment.bytes`), old (`segment.ms`, or `max.compaction.lag.ms` on a
/// compacted topic: [`LogConfig::max_segment_ms`]), or its relative offsets would
/// overflow the `u32` of the index. An empty segment never rolls (a batch larger than
/// `segment.bytes` gets a segment of its own).
fn needs_roll(active: &Segment, c: &LogConfig, now: i64, bytes: u64, records: i64) -> bool {
    active.size() > 0
        && (active.size() + bytes > c.segment_bytes
            || now.saturating_sub(active.created_ms) >= c.max_segment_ms()
            || active.next_offset() - active.base_offset + records > u32::MAX as i64)
}
