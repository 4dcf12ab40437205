//! A replicated partition: its Raft group decides what is appended and what is visible.
//!
//! The leader validates a produce as an unreplicated partition does, then proposes each
//! batch to the group and answers once the batch is committed (on a majority's disks); a
//! follower refuses produce and fetch (NOT_LEADER_OR_FOLLOWER), as does a partition whose
//! group has no leader. A new leader serves reads only once it has committed an entry of its
//! own term (KIP-207), so the high watermark it shows never goes back.
//!
//! Idempotent producers: the state is rebuilt from the log whenever this replica leads a new
//! term (the log may hold batches the previous leader wrote, or lost ones this replica cut
//! when it followed), and a batch is recorded only once committed; one idempotent batch per
//! partition is in flight at a time, so a retry after a failover is checked against what the
//! log really holds.
//!
//! The replica itself (the Raft state machine and its I/O) is the replication host's: this
//! module only talks to it through the group's handle.

use std::rc::{Rc, Weak};

use bytes::{Bytes, BytesMut};

use super::producer_state::{ProducerState, Verdict};
use super::{Acks, Partition, PartitionError};
use crate::replication::host::{Ack, GroupHandle, GroupId, Host, Published};
use crate::replication::{LogDevice, Replica, ReplicaError, ReplicaSettings, Role};
use crate::storage::batch::BatchHeader;
use crate::storage::{AppendInfo, StorageError};

/// The replication host of a core, as partitions see it.
pub type ReplicaHost = Host<LogDevice>;

/// A partition's group, and the host to leave when the partition closes.
pub(super) struct Attached {
    pub(super) handle: Rc<GroupHandle>,
    host: Weak<ReplicaHost>,
}

fn replication_error(e: ReplicaError) -> PartitionError {
    match e {
        ReplicaError::NotLeader { leader } => PartitionError::NotLeader { leader },
        e => PartitionError::Replication(e.to_string()),
    }
}

impl Partition {
    pub(super) fn group(&self) -> Option<Rc<GroupHandle>> {
        self.replica.borrow().as_ref().map(|a| a.handle.clone())
    }

    /// What the partition's replica last published, when it is replicated.
    pub fn leadership(&self) -> Option<Published> {
        self.group().map(|g| g.published())
    }

    /// Kafka's in-sync replicas (Raft node ids), when replicated and known.
    pub fn in_sync(&self) -> Option<Vec<crate::replication::NodeId>> {
        self.group().and_then(|g| g.in_sync())
    }

    /// Makes this partition a replica of `group` (its log becomes the group's Raft log).
    pub async fn attach_replica(
        self: &Rc<Self>,
        host: &Rc<ReplicaHost>,
        group: GroupId,
        settings: ReplicaSettings,
    ) -> Result<(), PartitionError> {
        let device = LogDevice::open(self.log.clone())
            .await
            .map_err(|e| PartitionError::Replication(e.to_string()))?;
        let replica = Replica::open(settings, device)
            .await
            .map_err(replication_error)?;
        let handle = host.add(group, replica);
        *self.replica.borrow_mut() = Some(Attached {
            handle: handle.clone(),
            host: Rc::downgrade(host),
        });
        // Consumers long-polling this partition wake when the commit point moves.
        let me = Rc::downgrade(self);
        glommio::spawn_local(async move {
            loop {
                handle.changed.notified().await;
                match me.upgrade() {
                    Some(p) if p.group().is_some_and(|g| Rc::ptr_eq(&g, &handle)) => {
                        p.data.notify()
                    }
                    _ => break,
                }
            }
        })
        .detach();
        Ok(())
    }

    /// Leaves the group (close or removal); waiting produces are answered with an error.
    pub(super) fn detach_replica(&self) {
        let attached = self.replica.borrow_mut().take();
        if let Some(a) = attached {
            if let Some(host) = a.host.upgrade() {
                host.remove(a.handle.group);
            }
            a.handle.changed.notify();
        }
    }

    /// Reads are served by a leader that has committed an entry of its term.
    pub(super) fn check_readable(&self) -> Result<(), PartitionError> {
        if let Some(g) = self.group() {
            let p = g.published();
            if p.role != Role::Leader {
                return Err(PartitionError::NotLeader { leader: p.leader });
            }
            if !p.leader_ready {
                return Err(PartitionError::LeaderNotReady);
            }
        }
        Ok(())
    }

    /// acks=all's `min.insync.replicas` check; `after`: the batch is in the log already.
    fn check_in_sync(
        &self,
        group: &GroupHandle,
        acks: Acks,
        after: bool,
    ) -> Result<(), PartitionError> {
        let required = self.log.min_insync_replicas();
        if acks != Acks::All || required <= 1 {
            return Ok(());
        }
        // Not known only in the first tick of a term: the leader's ISR starts whole.
        let Some(in_sync) = group.in_sync_count() else {
            return Ok(());
        };
        if in_sync >= required as usize {
            return Ok(());
        }
        Err(if after {
            PartitionError::NotEnoughReplicasAfterAppend { in_sync, required }
        } else {
            PartitionError::NotEnoughReplicas { in_sync, required }
        })
    }

    pub(super) async fn append_replicated(
        &self,
        group: &GroupHandle,
        records: Bytes,
        acks: Acks,
    ) -> Result<AppendInfo, PartitionError> {
        let info = self.append_replicated_inner(group, records, acks).await?;
        self.check_in_sync(group, acks, true)?;
        Ok(info)
    }

    async fn append_replicated_inner(
        &self,
        group: &GroupHandle,
        records: Bytes,
        acks: Acks,
    ) -> Result<AppendInfo, PartitionError> {
        let batches = self.validate(records)?;
        let leadership = group.published();
        if leadership.role != Role::Leader {
            return Err(PartitionError::NotLeader {
                leader: leadership.leader,
            });
        }
        self.check_in_sync(group, acks, false)?;
        let ack = match acks {
            Acks::All => Ack::Quorum,
            Acks::Leader => Ack::Leader,
        };
        let headers = batches.headers().to_vec();
        let (bytes, _) = batches.into_parts();
        let h = headers[0];
        if h.producer_id >= 0 {
            if headers.len() > 1 {
                return Err(PartitionError::ManyIdempotentBatches);
            }
            let _turn = self
                .sequencing
                .acquire_permit(1)
                .await
                .map_err(|_| StorageError::Closed)?;
            if self.producers_term.get() != leadership.term {
                let state = self.producers_from_log().await?;
                *self.producers.borrow_mut() = state;
                self.producers_term.set(leadership.term);
            }
            let verdict = self.producers.borrow().check(&h);
            match verdict {
                Verdict::Refuse(e) => return Err(PartitionError::Sequence(e)),
                Verdict::Duplicate { base_offset } => {
                    return Ok(AppendInfo {
                        base_offset,
                        last_offset: base_offset + h.last_offset_delta as i64,
                        log_append_time: -1,
                        record_count: h.record_count as i64,
                    })
                }
                Verdict::Append => {}
            }
            let p = group
                .propose(BytesMut::from(bytes), ack)
                .await
                .map_err(replication_error)?;
            self.producers.borrow_mut().record(&h, p.base_offset);
            return Ok(AppendInfo {
                base_offset: p.base_offset,
                last_offset: p.last_offset,
                log_append_time: -1,
                record_count: h.record_count as i64,
            });
        }
        // Every batch is queued at once (in order), then the answers are awaited.
        let mut waiters = Vec::with_capacity(headers.len());
        let mut at = 0usize;
        for h in &headers {
            let n = h.total_size();
            waiters.push(group.submit(BytesMut::from(&bytes[at..at + n]), ack));
            at += n;
        }
        let mut first = None;
        let mut last = -1;
        for w in waiters {
            let p = w.wait().await.map_err(replication_error)?;
            first.get_or_insert(p.base_offset);
            last = p.last_offset;
        }
        Ok(AppendInfo {
            base_offset: first.unwrap_or(last + 1),
            last_offset: last,
            log_append_time: -1,
            record_count: headers.iter().map(|h| h.record_count as i64).sum(),
        })
    }

    /// Producer state from every batch of the log.
    async fn producers_from_log(&self) -> Result<ProducerState, PartitionError> {
        let mut state = ProducerState::default();
        let mut scan = self.log.scan(self.log.log_start(), self.log.log_end());
        while let Some(batch) = scan.next().await? {
            if let Some(h) = BatchHeader::parse(&batch) {
                state.record(&h, h.base_offset);
            }
        }
        Ok(state)
    }
}
