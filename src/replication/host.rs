//! The Raft groups of one core, and the one task that drives them.
//!
//! A [`Host`] owns every [`Replica`] of its core. Nobody else touches a replica: a partition
//! holds a [`GroupHandle`], through which it queues proposals and reads what the replica last
//! published (role, leader, term, high watermark); the network hands inbound messages to
//! [`Host::deliver`]. The pump ([`Host::run`]) wakes when there is work or a tick is due, and
//! for each group with work steps its messages, proposes its queued batches, runs
//! [`Replica::process`] (the I/O), sends what Raft wants sent through the [`Transport`], and
//! answers the proposals whose fate is known. All groups' messages of one pass go out
//! together, so a transport that writes per pass batches them per peer.
//!
//! It decides nothing about Kafka: which acks a produce waits for is the caller's
//! ([`Ack`]), what error a client sees is the partition's.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use raft::eraftpb::Message;

use super::device::ReplicaDevice;
use super::replica::{Outcome, Proposed, Replica, ReplicaError, Role};
use super::{codec, NodeId};
use crate::notify::Notify;

/// A Raft group's id, the same on every broker (the transport's channel).
pub type GroupId = u64;

/// Where replication messages go. The host names the peer and the group; which core of
/// the peer owns the group is the transport's business.
pub trait Transport {
    fn send(&self, to: NodeId, group: GroupId, payload: Bytes);
}

/// What a produce waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Durable on the leader (acks=1).
    Leader,
    /// Committed: durable on a majority (acks=all).
    Quorum,
}

/// What a replica last told the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub role: Role,
    pub leader: Option<NodeId>,
    pub term: u64,
    /// Leader that has committed an entry of its own term (see [`Replica::leader_ready`]).
    pub leader_ready: bool,
    pub high_watermark: i64,
    pub log_end: i64,
}

type Answer = Result<Proposed, ReplicaError>;

/// A one-shot answer slot.
#[derive(Default)]
struct Slot {
    value: RefCell<Option<Answer>>,
    ready: Notify,
}

impl Slot {
    fn set(&self, v: Answer) {
        *self.value.borrow_mut() = Some(v);
        self.ready.notify();
    }
}

/// A partition's grip on its Raft group.
pub struct GroupHandle {
    pub group: GroupId,
    published: Cell<Published>,
    /// The replica's entry index (read-only here: leader-epoch lookups).
    pub store: Rc<super::store::EntryStore>,
    /// Kafka's in-sync replicas as the replica last knew them (refreshed at each tick).
    in_sync: RefCell<Option<Vec<NodeId>>>,
    /// What the replica last reported of the log it may still read back
    /// ([`Replica::raft_needs_from`]); apart from `published`, whose changes wake consumers.
    needs_from: Cell<i64>,
    /// Fired at each publish (new high watermark, new leader).
    pub changed: Notify,
    proposals: RefCell<VecDeque<(BytesMut, Ack, Rc<Slot>)>>,
    host_wake: Rc<Notify>,
    dirty: Rc<RefCell<BTreeSet<GroupId>>>,
}

impl GroupHandle {
    pub fn published(&self) -> Published {
        self.published.get()
    }

    /// The in-sync replicas (sorted node ids), `None` while not known (see
    /// [`crate::replication::in_sync`]).
    pub fn in_sync(&self) -> Option<Vec<NodeId>> {
        self.in_sync.borrow().clone()
    }

    /// How many replicas are in sync; `None` while not known.
    pub fn in_sync_count(&self) -> Option<usize> {
        self.in_sync.borrow().as_ref().map(Vec::len)
    }

    /// The lowest Kafka offset the group's Raft may still read from the partition's log, as
    /// of the host's last pass ([`Replica::raft_needs_from`]): the partition rewrites nothing
    /// at or above it. It decides what to clean; this only reports.
    pub fn raft_needs_from(&self) -> i64 {
        self.needs_from.get()
    }

    /// Proposes one batch and waits for `ack`. `Err(NotLeader)` if this replica is not the
    /// leader or loses the batch to another leader.
    pub async fn propose(&self, batch: BytesMut, ack: Ack) -> Answer {
        self.submit(batch, ack).wait().await
    }

    /// Queues one batch for proposal now (batches are proposed in the order submitted); the
    /// answer comes through the returned waiter.
    pub fn submit(&self, batch: BytesMut, ack: Ack) -> Waiter {
        let slot = Rc::new(Slot::default());
        self.proposals
            .borrow_mut()
            .push_back((batch, ack, slot.clone()));
        self.dirty.borrow_mut().insert(self.group);
        self.host_wake.notify();
        Waiter(slot)
    }
}

/// The answer to a submitted proposal.
pub struct Waiter(Rc<Slot>);

impl Waiter {
    pub async fn wait(self) -> Answer {
        loop {
            let ready = self.0.ready.notified();
            if let Some(answer) = self.0.value.borrow_mut().take() {
                return answer;
            }
            ready.await;
        }
    }
}

struct Group<D: ReplicaDevice> {
    /// Taken by the pump while it processes the group.
    replica: Option<Replica<D>>,
    handle: Rc<GroupHandle>,
    inbox: Vec<Message>,
    waiting: Vec<(Proposed, Ack, Rc<Slot>)>,
}

pub struct Host<D: ReplicaDevice> {
    groups: RefCell<BTreeMap<GroupId, Group<D>>>,
    dirty: Rc<RefCell<BTreeSet<GroupId>>>,
    wake: Rc<Notify>,
    transport: Rc<dyn Transport>,
    tick: Duration,
    stopped: Cell<bool>,
}

fn publish<D: ReplicaDevice>(r: &Replica<D>) -> Published {
    Published {
        role: r.role(),
        leader: r.leader(),
        term: r.term(),
        leader_ready: r.leader_ready(),
        high_watermark: r.high_watermark(),
        log_end: r.log_end(),
    }
}

impl<D: ReplicaDevice> Host<D> {
    pub fn new(transport: Rc<dyn Transport>, tick: Duration) -> Rc<Host<D>> {
        Rc::new(Host {
            groups: RefCell::new(BTreeMap::new()),
            dirty: Rc::new(RefCell::new(BTreeSet::new())),
            wake: Rc::new(Notify::default()),
            transport,
            tick,
            stopped: Cell::new(false),
        })
    }

    /// Adds a group; returns the handle its partition uses.
    pub fn add(&self, group: GroupId, replica: Replica<D>) -> Rc<GroupHandle> {
        let handle = Rc::new(GroupHandle {
            group,
            published: Cell::new(publish(&replica)),
            in_sync: RefCell::new(replica.in_sync()),
            store: replica.shared_store(),
            needs_from: Cell::new(replica.raft_needs_from()),
            changed: Notify::default(),
            proposals: RefCell::new(VecDeque::new()),
            host_wake: self.wake.clone(),
            dirty: self.dirty.clone(),
        });
        self.groups.borrow_mut().insert(
            group,
            Group {
                replica: Some(replica),
                handle: handle.clone(),
                inbox: Vec::new(),
                waiting: Vec::new(),
            },
        );
        self.dirty.borrow_mut().insert(group);
        self.wake.notify();
        handle
    }

    /// Removes a group (its partition is closed or deleted). Proposals still waiting are
    /// answered with an error. The replica is returned unless the pump holds it right now,
    /// in which case the pump drops it when it is done.
    pub fn remove(&self, group: GroupId) -> Option<Replica<D>> {
        let g = self.groups.borrow_mut().remove(&group)?;
        for (_, _, slot) in g.waiting {
            slot.set(Err(ReplicaError::Stopped(
                "the partition was closed".into(),
            )));
        }
        for (_, _, slot) in g.handle.proposals.borrow_mut().drain(..) {
            slot.set(Err(ReplicaError::Stopped(
                "the partition was closed".into(),
            )));
        }
        g.replica
    }

    /// A message from a peer for `group` (dropped if undecodable or for an unknown group:
    /// Raft tolerates lost messages, and the sender retries).
    pub fn deliver(&self, group: GroupId, payload: &Bytes) {
        let msg = match codec::decode(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(group, error = %e, "undecodable raft message dropped");
                return;
            }
        };
        if let Some(g) = self.groups.borrow_mut().get_mut(&group) {
            g.inbox.push(msg);
            self.dirty.borrow_mut().insert(group);
            self.wake.notify();
        }
    }

    /// Runs a closure on a group's replica when the pump does not hold it (tests, leadership
    /// transfer on shutdown).
    pub fn with_replica<T>(
        &self,
        group: GroupId,
        f: impl FnOnce(&mut Replica<D>) -> T,
    ) -> Option<T> {
        let mut groups = self.groups.borrow_mut();
        let r = groups.get_mut(&group)?.replica.as_mut()?;
        let out = f(r);
        self.dirty.borrow_mut().insert(group);
        self.wake.notify();
        Some(out)
    }

    /// Asks every group this host leads to hand leadership to its most caught-up follower
    /// (before a clean shutdown, so clients move on without waiting for an election).
    /// Returns how many were asked.
    pub fn hand_over_leadership(&self) -> usize {
        let mut asked = 0;
        let mut groups = self.groups.borrow_mut();
        for (id, g) in groups.iter_mut() {
            let Some(r) = g.replica.as_mut() else {
                continue;
            };
            if r.role() == Role::Leader {
                if let Some(to) = r.best_follower() {
                    r.transfer_leader(to);
                    self.dirty.borrow_mut().insert(*id);
                    asked += 1;
                }
            }
        }
        self.wake.notify();
        asked
    }

    /// Asks `group` to hand its leadership to `to` (see [`Replica::transfer_leader`]); false
    /// when the pump holds the replica right now (ask again) or the group is gone.
    pub fn transfer(&self, group: GroupId, to: NodeId) -> bool {
        self.with_replica(group, |r| r.transfer_leader(to))
            .is_some()
    }

    /// How many of this host's groups it leads, as last published.
    pub fn leading(&self) -> usize {
        self.groups
            .borrow()
            .values()
            .filter(|g| g.handle.published().role == Role::Leader)
            .count()
    }

    pub fn groups(&self) -> Vec<GroupId> {
        self.groups.borrow().keys().copied().collect()
    }

    pub fn stop(&self) {
        self.stopped.set(true);
        self.wake.notify();
    }

    /// The pump: runs until [`Host::stop`].
    pub async fn run(self: Rc<Self>) {
        let mut next_tick = Instant::now() + self.tick;
        while !self.stopped.get() {
            let woken = self.wake.notified();
            if self.dirty.borrow().is_empty() {
                let now = Instant::now();
                if now < next_tick {
                    let sleep = glommio::timer::sleep(next_tick - now);
                    futures_lite::future::or(woken, async {
                        sleep.await;
                    })
                    .await;
                }
            }
            let now = Instant::now();
            let tick = now >= next_tick;
            if tick {
                next_tick = now + self.tick;
            }
            self.pass(tick).await;
        }
    }

    /// One pass over the groups with work (all of them on a tick).
    pub async fn pass(&self, tick: bool) {
        let todo: Vec<GroupId> = if tick {
            self.dirty.borrow_mut().clear();
            self.groups.borrow().keys().copied().collect()
        } else {
            std::mem::take(&mut *self.dirty.borrow_mut())
                .into_iter()
                .collect()
        };
        let mut out: Vec<(NodeId, GroupId, Message)> = Vec::new();
        for group in todo {
            let taken = {
                let mut groups = self.groups.borrow_mut();
                let Some(g) = groups.get_mut(&group) else {
                    continue;
                };
                let Some(mut r) = g.replica.take() else {
                    continue;
                };
                if tick {
                    r.tick();
                }
                for m in g.inbox.drain(..) {
                    r.step(m);
                }
                for (batch, ack, slot) in g.handle.proposals.borrow_mut().drain(..) {
                    match r.propose(batch) {
                        Ok(p) => g.waiting.push((p, ack, slot)),
                        Err(e) => slot.set(Err(e)),
                    }
                }
                r
            };
            let mut r = taken;
            let result = r.process().await;
            let mut groups = self.groups.borrow_mut();
            let Some(g) = groups.get_mut(&group) else {
                // Removed while processing: the replica goes with this scope.
                continue;
            };
            let failed = match result {
                Ok(msgs) => {
                    out.extend(msgs.into_iter().map(|m| (m.to, group, m)));
                    false
                }
                Err(e) => {
                    if !matches!(e, ReplicaError::Stopped(_)) {
                        tracing::error!(group, error = %e, "replica failed; it answers nothing more");
                    }
                    true
                }
            };
            let mut still = Vec::new();
            for (p, ack, slot) in g.waiting.drain(..) {
                if Rc::strong_count(&slot) == 1 {
                    // The producer stopped waiting (its request timed out).
                    continue;
                }
                let outcome = r.outcome(&p);
                let done = match (outcome, ack) {
                    (Outcome::Lost, _) => Some(Err(ReplicaError::NotLeader { leader: r.leader() })),
                    (Outcome::Committed, _) => Some(Ok(p)),
                    (Outcome::Pending, Ack::Leader) if r.persisted_here(&p) => Some(Ok(p)),
                    (Outcome::Pending, _) if r.role() != Role::Leader => {
                        // Deposed: the batch may yet be committed by the next leader, but
                        // this broker cannot tell the client so; Kafka answers the same.
                        Some(Err(ReplicaError::NotLeader { leader: r.leader() }))
                    }
                    _ => None,
                };
                match done {
                    Some(a) => slot.set(a),
                    None => still.push((p, ack, slot)),
                }
            }
            g.waiting = still;
            // A failed replica no longer claims anything: clients are sent elsewhere and the
            // other replicas elect a leader without it.
            let published = if failed {
                Published {
                    role: Role::Follower,
                    leader: None,
                    leader_ready: false,
                    ..publish(&r)
                }
            } else {
                publish(&r)
            };
            if tick {
                let in_sync = if failed { None } else { r.in_sync() };
                *g.handle.in_sync.borrow_mut() = in_sync;
            }
            g.handle.needs_from.set(r.raft_needs_from());
            if published != g.handle.published.get() {
                g.handle.published.set(published);
                g.handle.changed.notify();
            }
            if !g.inbox.is_empty() || !g.handle.proposals.borrow().is_empty() {
                self.dirty.borrow_mut().insert(group);
            }
            g.replica = Some(r);
        }
        for (to, group, m) in out {
            match codec::encode(&m) {
                Ok(bytes) => self.transport.send(to, group, bytes),
                Err(e) => tracing::error!(group, error = %e, "raft message not encodable"),
            }
        }
    }
}
