//! The replica: drives one partition's raft-rs `RawNode` over its [`EntryStore`].
//!
//! The owner (a broker core, or the simulation) calls [`Replica::tick`] on a timer,
//! [`Replica::step`] with each message received, [`Replica::propose`] with batches to append
//! when leader, and then [`Replica::process`], which does the I/O raft-rs asks for in the
//! order Raft needs it and returns the messages to send:
//!
//! 1. a new term or vote is written durably before any message leaves;
//! 2. a leader's appends to followers leave before its own write (they overlap with it);
//! 3. entries are written and synced, then raft-rs is told they are persisted, and only then
//!    do the messages that claim them (append responses, votes) leave;
//! 4. committed entries are applied: the high watermark moves to the end of the last one.
//!
//! The leader stamps each proposed batch with its base offset and the term (as the batch's
//! `partitionLeaderEpoch`), so every replica stores the same bytes at the same offsets.
//! Whether a proposal was committed or lost is [`Replica::outcome`]; Kafka's answers (acks,
//! error codes) are the partition layer's.

use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Message, MessageType};
use raft::{Config, RawNode, StateRole};
use thiserror::Error;

use super::device::{DeviceError, ReplicaDevice};
use super::entries::EntryKind;
use super::in_sync::InSync;
use super::store::{EntryStore, StoreHandle};
use super::NodeId;
use crate::limits::{
    DEFAULT_REPLICA_LAG_TIME_MAX_MS, RAFT_CLEANER_PEER_TIMEOUT_TICKS, RAFT_ELECTION_TICKS,
    RAFT_HEARTBEAT_TICKS, RAFT_MAX_APPEND_BYTES, RAFT_MAX_INFLIGHT_APPENDS, RAFT_TICK_MS,
};
use crate::storage::batch::{set_base_offset, set_partition_leader_epoch, BatchHeader};

#[derive(Debug, Error)]
pub enum ReplicaError {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("not one valid record batch: {0}")]
    InvalidBatch(String),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("raft: {0}")]
    Raft(String),
    #[error("raft message codec: {0}")]
    Codec(String),
    #[error("replica stopped after an earlier failure: {0}")]
    Stopped(String),
}

#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    /// This replica's node id.
    pub id: NodeId,
    /// The voters of a group that has no state yet (ignored once it has).
    pub voters: Vec<NodeId>,
    /// Kafka offset at which the log starts.
    pub start_offset: i64,
    /// For log lines: the partition's name.
    pub name: String,
    pub heartbeat_ticks: usize,
    pub election_ticks: usize,
    /// raft-rs draws each election timeout from `[election, 2 * election)` with a thread-local
    /// random generator; a simulation that must replay from its seed fixes it at `election`
    /// and varies the replicas' clocks instead.
    pub fixed_election_timeout: bool,
    /// `replica.lag.time.max.ms` in ticks: how long a follower may lag and stay in sync.
    pub lag_ticks: u64,
}

impl ReplicaSettings {
    pub fn new(id: NodeId, voters: Vec<NodeId>, name: impl Into<String>) -> ReplicaSettings {
        ReplicaSettings {
            id,
            voters,
            start_offset: 0,
            name: name.into(),
            heartbeat_ticks: RAFT_HEARTBEAT_TICKS,
            election_ticks: RAFT_ELECTION_TICKS,
            fixed_election_timeout: false,
            lag_ticks: DEFAULT_REPLICA_LAG_TIME_MAX_MS / RAFT_TICK_MS,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    Candidate,
}

/// A batch the leader proposed: where it will be if it is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposed {
    pub index: u64,
    pub term: u64,
    pub base_offset: i64,
    pub last_offset: i64,
}

/// What became of a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not committed yet; it may still be.
    Pending,
    /// Committed: on a majority's disks, at the offsets it was proposed with.
    Committed,
    /// Replaced by another leader's entry: it will never be committed.
    Lost,
}

pub struct Replica<D: ReplicaDevice> {
    node: RawNode<StoreHandle>,
    store: Rc<EntryStore>,
    device: D,
    /// Term and vote as last written durably.
    durable: (u64, u64),
    /// Index and term of the last applied entry.
    applied: (u64, u64),
    /// Offset right after the last committed batch.
    high_watermark: i64,
    /// Set once a device operation failed: Raft was possibly told something the disk does
    /// not hold, so the replica stops rather than guess.
    failed: Option<String>,
    in_sync: InSync,
    /// Ticks so far, and the tick at which each peer was last heard from (a peer away for
    /// longer than [`RAFT_CLEANER_PEER_TIMEOUT_TICKS`] does not hold the cleaner back; one
    /// never heard from counts from tick 0).
    ticks: u64,
    heard: BTreeMap<NodeId, u64>,
}

impl<D: ReplicaDevice> Replica<D> {
    /// Opens a replica from what its device holds (see [`EntryStore::recover`]).
    pub async fn open(settings: ReplicaSettings, device: D) -> Result<Replica<D>, ReplicaError> {
        let store = EntryStore::recover(&device, settings.start_offset, &settings.voters).await?;
        let hard = store.hard_state();
        let config = Config {
            id: settings.id,
            election_tick: settings.election_ticks,
            heartbeat_tick: settings.heartbeat_ticks,
            // Committed entries before a restart are not applied again: the high watermark
            // is read from the index.
            applied: hard.commit,
            max_size_per_msg: RAFT_MAX_APPEND_BYTES,
            max_inflight_msgs: RAFT_MAX_INFLIGHT_APPENDS,
            check_quorum: true,
            pre_vote: true,
            ..Config::default()
        };
        let config = if settings.fixed_election_timeout {
            Config {
                min_election_tick: settings.election_ticks,
                max_election_tick: settings.election_ticks + 1,
                ..config
            }
        } else {
            config
        };
        config
            .validate()
            .map_err(|e| ReplicaError::Raft(e.to_string()))?;
        let logger = super::logger::for_group(&settings.name);
        let node = RawNode::new(&config, StoreHandle(store.clone()), &logger)
            .map_err(|e| ReplicaError::Raft(e.to_string()))?;
        let (applied_term, high_watermark) = match store.meta(hard.commit) {
            Some(m) => (m.term, m.next_offset),
            None => (0, settings.start_offset),
        };
        Ok(Replica {
            node,
            store,
            device,
            durable: (hard.term, hard.vote),
            applied: (hard.commit, applied_term),
            high_watermark,
            failed: None,
            in_sync: InSync::new(settings.id, settings.lag_ticks),
            ticks: 0,
            heard: BTreeMap::new(),
        })
    }

    pub fn id(&self) -> NodeId {
        self.node.raft.id
    }

    pub fn term(&self) -> u64 {
        self.node.raft.term
    }

    pub fn role(&self) -> Role {
        match self.node.raft.state {
            StateRole::Leader => Role::Leader,
            StateRole::Follower => Role::Follower,
            StateRole::Candidate | StateRole::PreCandidate => Role::Candidate,
        }
    }

    /// The leader this replica knows of (itself included).
    pub fn leader(&self) -> Option<NodeId> {
        match self.node.raft.leader_id {
            raft::INVALID_ID => None,
            id => Some(id),
        }
    }

    /// A leader may answer reads once it has committed an entry of its own term: before that
    /// its commit index may be behind its predecessor's, and the high watermark it would
    /// show could go back (KIP-207's OFFSET_NOT_AVAILABLE window).
    pub fn leader_ready(&self) -> bool {
        self.role() == Role::Leader && self.applied.1 == self.node.raft.term
    }

    /// Offset right after the last committed batch: what consumers may read up to.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// Offset right after the last batch durable on this replica.
    pub fn log_end(&self) -> i64 {
        self.store.end_offset()
    }

    pub fn commit_index(&self) -> u64 {
        self.applied.0
    }

    /// The lowest Kafka offset Raft may still read back from this replica's log: below it
    /// the batches may be rewritten (compacted) by the partition. On the leader it is the end
    /// of the entry every peer (voters and learners) is known to hold: the smallest matched
    /// index of raft-rs's progress (a new leader knows nothing of its peers until they answer,
    /// so until then nothing is released), leaving out peers not heard from for
    /// [`RAFT_CLEANER_PEER_TIMEOUT_TICKS`] (a broker that is down does not stop compaction
    /// for as long as it is away). On every replica it is also at most the end of the last
    /// applied entry: above it, a divergent tail may be cut and replaced (recovery and apply
    /// read the entry index only, never the batches). A follower does not see the others'
    /// progress: its own applied point is all it can tell. Should it lead later, or a peer
    /// left out return, that peer is sent the compacted batches (see
    /// `EntryStore::keep_fetched`).
    pub fn raft_needs_from(&self) -> i64 {
        if self.failed.is_some() {
            // A stopped replica reads nothing more; what it holds is still released only
            // below its applied point.
            return self.high_watermark;
        }
        let needed = if self.role() == Role::Leader {
            let me = self.node.raft.id;
            // A peer never heard from counts from this replica's start.
            let recent = |id: &NodeId| {
                let heard = self.heard.get(id).copied().unwrap_or(0);
                *id == me || self.ticks.saturating_sub(heard) <= RAFT_CLEANER_PEER_TIMEOUT_TICKS
            };
            let matched = self
                .node
                .raft
                .prs()
                .iter()
                .filter(|(id, _)| recent(id))
                .map(|(_, p)| p.matched)
                .min()
                .unwrap_or(0);
            self.store.end_offset_at(matched)
        } else {
            self.high_watermark
        };
        needed.min(self.high_watermark)
    }

    pub fn device(&self) -> &D {
        &self.device
    }

    pub fn store(&self) -> &EntryStore {
        &self.store
    }

    /// The entry store, shared (a partition answers leader-epoch lookups from it while the
    /// replication pump holds the replica).
    pub fn shared_store(&self) -> Rc<EntryStore> {
        self.store.clone()
    }

    /// Advances Raft's clock by one tick.
    pub fn tick(&mut self) {
        self.ticks += 1;
        self.node.tick();
        if self.role() == Role::Leader {
            let raft = &self.node.raft;
            let peers = raft
                .prs()
                .iter()
                .map(|(id, p)| (*id, p.matched, p.recent_active));
            self.in_sync
                .leader_tick(raft.term, raft.raft_log.last_index(), peers);
        } else {
            self.in_sync.follower_tick();
        }
    }

    /// Kafka's in-sync replicas (sorted node ids) as this replica knows them: judged here on
    /// the leader, heard from the leader on a follower; `None` when not known (see
    /// [`super::in_sync`]).
    pub fn in_sync(&self) -> Option<Vec<NodeId>> {
        self.in_sync
            .members(self.term(), self.role() == Role::Leader)
    }

    /// Starts an election now (a test's or an operator's shortcut past the election timeout).
    pub fn campaign(&mut self) -> Result<(), ReplicaError> {
        self.node
            .campaign()
            .map_err(|e| ReplicaError::Raft(e.to_string()))
    }

    /// The follower with the most of the log (the one to hand leadership to), if any.
    pub fn best_follower(&self) -> Option<NodeId> {
        let me = self.node.raft.id;
        self.node
            .raft
            .prs()
            .iter()
            .filter(|(id, _)| **id != me)
            .max_by_key(|(_, p)| p.matched)
            .map(|(id, _)| *id)
    }

    /// Asks the leader to hand leadership to `to` (a clean shutdown does this; on a follower
    /// raft-rs passes the request on to the leader, which is how a preferred replica asks for
    /// its leadership back).
    pub fn transfer_leader(&mut self, to: NodeId) {
        self.node.transfer_leader(to);
    }

    /// Hands a message from a peer to Raft. Messages from unknown peers and stale responses
    /// are dropped, as the network may deliver them.
    pub fn step(&mut self, mut msg: Message) {
        self.heard.insert(msg.from, self.ticks);
        if msg.get_msg_type() == MessageType::MsgHeartbeat
            && !msg.context.is_empty()
            && self.in_sync.hear(&msg.context)
        {
            // Ours, not a ReadIndex context: raft-rs must not echo it back.
            msg.context = Bytes::new();
        }
        if let Err(e) = self.node.step(msg) {
            tracing::trace!(error = %e, "raft message dropped");
        }
    }

    /// Where Raft's log ends in Kafka offsets, entries not yet persisted included: the base
    /// offset the next proposal gets.
    fn proposal_end(&self) -> i64 {
        let unstable = &self.node.raft.raft_log.unstable;
        for e in unstable.entries.iter().rev() {
            if e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
                if let Some(h) = BatchHeader::parse(&e.data) {
                    return h.next_offset();
                }
            }
        }
        // No batch among them: the log ends where the durable entry before them ends.
        self.store.end_offset_at(unstable.offset.saturating_sub(1))
    }

    /// Proposes one record batch (as the client sent it, validated by the caller); stamps its
    /// base offset and leader epoch.
    pub fn propose(&mut self, mut batch: BytesMut) -> Result<Proposed, ReplicaError> {
        if let Some(why) = &self.failed {
            return Err(ReplicaError::Stopped(why.clone()));
        }
        if self.role() != Role::Leader {
            return Err(ReplicaError::NotLeader {
                leader: self.leader(),
            });
        }
        let header = BatchHeader::parse(&batch)
            .filter(|h| h.magic == 2 && h.total_size() == batch.len())
            .ok_or_else(|| ReplicaError::InvalidBatch("not one whole v2 batch".into()))?;
        let term = self.node.raft.term;
        let epoch = i32::try_from(term)
            .map_err(|_| ReplicaError::Raft(format!("term {term} exceeds a leader epoch")))?;
        let base = self.proposal_end();
        set_base_offset(&mut batch, base);
        set_partition_leader_epoch(&mut batch, epoch);
        let mut entry = Entry::default();
        entry.set_entry_type(EntryType::EntryNormal);
        entry.data = batch.freeze();
        let mut msg = Message::default();
        msg.set_msg_type(MessageType::MsgPropose);
        msg.from = self.node.raft.id;
        msg.entries = vec![entry].into();
        // `RawNode::propose` takes a `Vec<u8>` and would copy the batch; a hand-built
        // proposal carries the buffer itself.
        self.node.raft.step(msg).map_err(|e| match e {
            raft::Error::ProposalDropped => ReplicaError::NotLeader {
                leader: self.leader(),
            },
            e => ReplicaError::Raft(e.to_string()),
        })?;
        Ok(Proposed {
            index: self.node.raft.raft_log.last_index(),
            term,
            base_offset: base,
            last_offset: base + header.last_offset_delta as i64,
        })
    }

    /// Whether a proposal was committed, lost, or may still be committed.
    pub fn outcome(&self, p: &Proposed) -> Outcome {
        if self.applied.0 >= p.index {
            return match self.store.meta(p.index) {
                Some(m) if m.term == p.term => Outcome::Committed,
                _ => Outcome::Lost,
            };
        }
        match self.node.raft.raft_log.term(p.index) {
            Ok(t) if t == p.term => Outcome::Pending,
            // The index is gone (truncated below) or holds another term's entry.
            Ok(t) if t != 0 => Outcome::Lost,
            _ if self.node.raft.raft_log.last_index() >= p.index => Outcome::Lost,
            _ => {
                if self.node.raft.term > p.term && self.role() == Role::Leader {
                    Outcome::Lost
                } else {
                    Outcome::Pending
                }
            }
        }
    }

    /// Whether a proposal is durable on this replica (Kafka's acks=1 point).
    pub fn persisted_here(&self, p: &Proposed) -> bool {
        self.store.meta(p.index).is_some_and(|m| m.term == p.term)
    }

    /// Does the I/O Raft asked for, in Raft's order, and returns the messages to send.
    /// After a device failure the replica answers nothing more (see [`ReplicaError::Stopped`]).
    pub async fn process(&mut self) -> Result<Vec<Message>, ReplicaError> {
        if let Some(why) = &self.failed {
            return Err(ReplicaError::Stopped(why.clone()));
        }
        match self.process_inner().await {
            Ok(out) => Ok(out),
            Err(e) => {
                self.failed = Some(e.to_string());
                Err(e)
            }
        }
    }

    async fn process_inner(&mut self) -> Result<Vec<Message>, ReplicaError> {
        let mut out = Vec::new();
        if let Some((offset, from, contexts)) = self.store.take_fetch() {
            let batches = self
                .device
                .read_batches(offset, RAFT_MAX_APPEND_BYTES as usize)
                .await?;
            // Every batch from `offset` to where the read stopped (the device's end when it
            // found none: the cleaner dropped all of them) is in `batches`.
            let covered = batches
                .last()
                .and_then(|b| BatchHeader::parse(b))
                .map_or(self.device.batch_end(), |h| h.next_offset());
            self.store.keep_fetched(from, batches, covered);
            for c in contexts {
                self.node.on_entries_fetched(c);
            }
        }
        while self.node.has_ready() {
            let mut rd = self.node.ready();
            if let Some(hs) = rd.hs() {
                let hs = hs.clone();
                let changed = (hs.term, hs.vote) != self.durable;
                self.store.set_hard_state(hs.clone());
                if changed {
                    self.store.write_state(&self.device).await?;
                    self.durable = (hs.term, hs.vote);
                }
            }
            out.extend(rd.take_messages());
            if !rd.snapshot().is_empty() {
                return Err(ReplicaError::Raft(
                    "a snapshot was sent, and replicas are not rebuilt from snapshots".into(),
                ));
            }
            self.store.persist(&self.device, rd.entries()).await?;
            let committed = rd.take_committed_entries();
            self.apply(committed).await?;
            out.extend(rd.take_persisted_messages());
            let mut light = self.node.advance(rd);
            if let Some(commit) = light.commit_index() {
                self.store.set_commit(commit);
            }
            out.extend(light.take_messages());
            let committed = light.take_committed_entries();
            self.apply(committed).await?;
            self.node.advance_apply();
        }
        let heartbeat =
            |m: &Message| m.get_msg_type() == MessageType::MsgHeartbeat && m.context.is_empty();
        if self.role() == Role::Leader && out.iter().any(heartbeat) {
            if let Some(ctx) = self.in_sync.context(self.term()) {
                for m in out.iter_mut().filter(|m| heartbeat(m)) {
                    m.context = ctx.clone();
                }
            }
        }
        Ok(out)
    }

    async fn apply(&mut self, entries: Vec<Entry>) -> Result<(), ReplicaError> {
        for e in entries {
            match e.get_entry_type() {
                EntryType::EntryConfChange => {
                    let cc: ConfChange = protobuf::Message::parse_from_bytes(&e.data)
                        .map_err(|x| ReplicaError::Codec(x.to_string()))?;
                    self.apply_conf(&cc).await?;
                }
                EntryType::EntryConfChangeV2 => {
                    let cc: ConfChangeV2 = protobuf::Message::parse_from_bytes(&e.data)
                        .map_err(|x| ReplicaError::Codec(x.to_string()))?;
                    self.apply_conf(&cc).await?;
                }
                EntryType::EntryNormal => {}
            }
            let meta = self.store.meta(e.index).ok_or_else(|| {
                DeviceError::Corrupt(format!("committed entry {} is not in the index", e.index))
            })?;
            debug_assert!(meta.kind != EntryKind::Data || meta.next_offset > meta.base_offset);
            assert!(
                meta.next_offset >= self.high_watermark,
                "the high watermark never goes back"
            );
            self.high_watermark = meta.next_offset;
            self.applied = (e.index, e.term);
        }
        Ok(())
    }

    async fn apply_conf(&mut self, cc: &impl raft_proto::ConfChangeI) -> Result<(), ReplicaError> {
        let conf = self
            .node
            .apply_conf_change(cc)
            .map_err(|e| ReplicaError::Raft(e.to_string()))?;
        self.store.set_conf_state(conf);
        self.store.write_state(&self.device).await?;
        Ok(())
    }

    /// The messages' wire form, for a transport.
    pub fn encode(msg: &Message) -> Result<Bytes, ReplicaError> {
        super::codec::encode(msg)
    }
}
