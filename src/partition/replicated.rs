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
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::producer_state::{ProducerState, Verdict};
use super::{Acks, Partition, PartitionError, Staged};
use crate::replication::host::{Ack, GroupHandle, GroupId, Host, Published, Waiter};
use crate::replication::{LogDevice, NodeId, Replica, ReplicaError, ReplicaSettings, Role};
use crate::storage::batch::BatchHeader;
use crate::storage::{AppendInfo, StorageError};

/// What asking for the preferred replica's leadership came to (ElectLeaders).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// The preferred replica leads already (or the partition has one replica).
    NotNeeded,
    /// It leads now.
    Elected,
    /// It did not take over in time: not in sync, not alive, or no leader to hand over.
    NotAvailable,
}

/// Batches queued for proposal, in order, with their answers to come.
pub struct Proposal {
    waiters: Vec<Waiter>,
    record_count: i64,
}

/// How often an election for the preferred replica asks again.
const ELECTION_RETRY: Duration = Duration::from_secs(1);

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

    fn host(&self) -> Option<Rc<ReplicaHost>> {
        self.replica
            .borrow()
            .as_ref()
            .and_then(|a| a.host.upgrade())
    }

    /// Asks for `preferred`'s leadership without waiting (see [`Self::elect_preferred`]):
    /// only once it is in sync and another replica leads. Returns whether it asked.
    pub fn prefer_leader(&self, preferred: NodeId) -> bool {
        let (Some(group), Some(host)) = (self.group(), self.host()) else {
            return false;
        };
        let p = group.published();
        let in_sync = group.in_sync().is_some_and(|ids| ids.contains(&preferred));
        if p.leader.is_none() || p.leader == Some(preferred) || !in_sync {
            return false;
        }
        host.transfer(group.group, preferred)
    }

    /// Makes `preferred` the leader (Raft's leadership transfer: the leader hands over once
    /// `preferred` holds its whole log) and waits up to `wait` for it to lead.
    pub async fn elect_preferred(
        &self,
        preferred: NodeId,
        wait: Duration,
    ) -> Result<Election, PartitionError> {
        let Some(group) = self.group() else {
            return Ok(Election::NotNeeded);
        };
        if group.published().leader == Some(preferred) {
            return Ok(Election::NotNeeded);
        }
        let deadline = Instant::now() + wait;
        // A transfer the leader gave up (the preferred replica did not catch up within an
        // election timeout) is asked for again.
        let mut asked: Option<Instant> = None;
        loop {
            let p = group.published();
            if p.leader == Some(preferred) {
                return Ok(Election::Elected);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Election::NotAvailable);
            }
            if asked.is_none_or(|at| at.elapsed() >= ELECTION_RETRY)
                && self.prefer_leader(preferred)
            {
                asked = Some(now);
            }
            let changed = group.changed.notified();
            let pause = glommio::timer::sleep((deadline - now).min(Duration::from_millis(100)));
            futures_lite::future::or(changed, pause).await;
        }
    }

    /// The leader epoch clients see: the Raft term when replicated, 0 for a broker alone
    /// (it has led every partition since its creation, in one epoch).
    pub fn leader_epoch(&self) -> i32 {
        self.group()
            .map_or(0, |g| i32::try_from(g.published().term).unwrap_or(i32::MAX))
    }

    /// KIP-320: a client's `current_leader_epoch` (-1: no check) must be this leader's.
    pub(super) fn check_leader_epoch(&self, asked: i32) -> Result<(), PartitionError> {
        let current = self.leader_epoch();
        match asked {
            a if a < 0 || a == current => Ok(()),
            a if a < current => Err(PartitionError::FencedLeaderEpoch { asked, current }),
            _ => Err(PartitionError::UnknownLeaderEpoch { asked, current }),
        }
    }

    /// Where `epoch` ended (OffsetForLeaderEpoch), asked of the leader: the current epoch ends
    /// at the log end, an older one where the next began (the entry index's terms, which are
    /// the batches' leader epochs); `None` for an epoch newer than the current or undefined
    /// (-1), as Kafka answers. A broker alone has one epoch, 0, which ends at the high
    /// watermark.
    pub fn epoch_end(
        &self,
        current: i32,
        epoch: i32,
    ) -> Result<Option<(i32, i64)>, PartitionError> {
        self.check_readable()?;
        self.check_leader_epoch(current)?;
        let now = self.leader_epoch();
        if epoch < 0 || epoch > now {
            return Ok(None);
        }
        let Some(group) = self.group() else {
            return Ok((epoch == 0).then(|| (0, self.high_watermark())));
        };
        if epoch == now {
            return Ok(Some((now, self.log.log_end())));
        }
        Ok(Some(match group.store.epoch_end(epoch as u64) {
            Some((floor, end)) => (i32::try_from(floor).unwrap_or(epoch), end),
            None => (now, self.log.log_end()),
        }))
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

    /// What a leader checks before it proposes a produce: valid batches, still the leader,
    /// enough replicas in sync for acks=all. The batches' bytes and headers, and what the
    /// proposal waits for.
    fn admit(
        &self,
        group: &GroupHandle,
        records: Bytes,
        acks: Acks,
    ) -> Result<(Bytes, Vec<BatchHeader>, Ack), PartitionError> {
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
        Ok((bytes, headers, ack))
    }

    async fn append_replicated_inner(
        &self,
        group: &GroupHandle,
        records: Bytes,
        acks: Acks,
    ) -> Result<AppendInfo, PartitionError> {
        let (bytes, headers, ack) = self.admit(group, records, acks)?;
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
            // The term now, after waiting for the turn: a replica that led again meanwhile
            // rebuilds the state of its new term.
            let term = group.published().term;
            if self.producers_term.get() != term {
                let state = self.producers_from_log().await?;
                *self.producers.borrow_mut() = state;
                self.producers_term.set(term);
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
        let proposed = self.submit_replicated(group, bytes, &headers, ack);
        self.await_proposed(proposed).await
    }

    /// Queues every batch of a produce for proposal at once, in order (a later produce's
    /// batches are queued after these): the first half of a produce that needs no sequence
    /// check, so that a connection's next request can be read while these commit.
    fn submit_replicated(
        &self,
        group: &GroupHandle,
        bytes: Bytes,
        headers: &[BatchHeader],
        ack: Ack,
    ) -> Proposal {
        let mut waiters = Vec::with_capacity(headers.len());
        let mut at = 0usize;
        for h in headers {
            let n = h.total_size();
            waiters.push(group.submit(BytesMut::from(&bytes[at..at + n]), ack));
            at += n;
        }
        Proposal {
            waiters,
            record_count: headers.iter().map(|h| h.record_count as i64).sum(),
        }
    }

    /// The second half: waits for every batch's answer.
    async fn await_proposed(&self, proposal: Proposal) -> Result<AppendInfo, PartitionError> {
        let mut first = None;
        let mut last = -1;
        for w in proposal.waiters {
            let p = w.wait().await.map_err(replication_error)?;
            first.get_or_insert(p.base_offset);
            last = p.last_offset;
        }
        Ok(AppendInfo {
            base_offset: first.unwrap_or(last + 1),
            last_offset: last,
            log_append_time: -1,
            record_count: proposal.record_count,
        })
    }

    /// The first half of a produce to a replicated partition (see [`Partition::stage`]):
    /// batches of producers without a sequence are checked and queued for proposal, and the
    /// answer is awaited by [`Self::complete_replicated`]; an idempotent producer's batch is
    /// appended whole here (one at a time per partition: its sequence is checked against what
    /// the log really holds).
    pub(super) async fn stage_replicated(
        &self,
        group: &GroupHandle,
        records: Bytes,
        acks: Acks,
    ) -> Result<Staged, PartitionError> {
        let idempotent = BatchHeader::parse(&records).is_some_and(|h| h.producer_id >= 0);
        if idempotent {
            return Ok(Staged::Appended(
                self.append_replicated(group, records, acks).await?,
            ));
        }
        let (bytes, headers, ack) = self.admit(group, records, acks)?;
        Ok(Staged::Proposed {
            proposal: self.submit_replicated(group, bytes, &headers, ack),
            acks,
        })
    }

    pub(super) async fn complete_replicated(
        &self,
        group: &GroupHandle,
        proposal: Proposal,
        acks: Acks,
    ) -> Result<AppendInfo, PartitionError> {
        let info = self.await_proposed(proposal).await?;
        self.check_in_sync(group, acks, true)?;
        Ok(info)
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
