//! This core's part in the cluster: the replication host that drives the Raft groups of the
//! partitions it owns, the link from the host to the inter-broker transport, and the mapping
//! between Kafka's names (broker ids, topic partitions) and Raft's (node ids, group ids).
//!
//! A partition's group id is the same on every broker (a hash of topic name and partition
//! number), and so is the core that owns it ([`super::owner_of`], given the same core count
//! on every broker), so a message for a group goes to that core of the peer. Raft ids are
//! broker ids plus one: raft-rs reserves 0.
//!
//! It decides nothing about partitions (that is [`crate::partition`]) and never touches a
//! socket itself (that is [`crate::rpc`]).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;

use super::{owner_of, TopicPartition};
use crate::limits::RAFT_TICK_MS;
use crate::partition::ReplicaHost;
use crate::replication::host::{GroupId, Host, Transport};
use crate::replication::NodeId;

/// The controller's Raft group (cluster metadata), on [`super::CATALOG_CORE`] of every broker.
pub const CONTROLLER_GROUP: GroupId = u64::MAX;

/// The Raft id of a broker.
pub fn raft_id(broker: i32) -> NodeId {
    broker as u64 + 1
}

/// The broker of a Raft id.
pub fn broker_of(raft: NodeId) -> i32 {
    raft.saturating_sub(1) as i32
}

/// A partition's Raft group, the same on every broker.
pub fn group_id(tp: &TopicPartition) -> GroupId {
    ((crc32c::crc32c(tp.topic.as_bytes()) as u64) << 32) | (tp.partition as u32 as u64)
}

/// Sends the host's messages through the transport, to the core that owns the group on the
/// peer. Set once the transport has started (it needs the host for what it receives).
pub struct RpcLink {
    transport: RefCell<Option<Rc<crate::rpc::Transport>>>,
    cores: usize,
    /// Core of each group on peers (partitions: their owner; the controller: core 0).
    routes: RefCell<std::collections::HashMap<GroupId, usize>>,
}

impl RpcLink {
    pub fn new(cores: usize) -> Rc<RpcLink> {
        Rc::new(RpcLink {
            transport: RefCell::new(None),
            cores,
            routes: RefCell::new(std::collections::HashMap::new()),
        })
    }

    pub fn connect(&self, transport: Rc<crate::rpc::Transport>) {
        *self.transport.borrow_mut() = Some(transport);
    }

    pub fn route(&self, group: GroupId, tp: Option<&TopicPartition>) {
        let core = tp.map_or(super::CATALOG_CORE, |tp| owner_of(tp, self.cores));
        self.routes.borrow_mut().insert(group, core);
    }

    pub fn transport(&self) -> Option<Rc<crate::rpc::Transport>> {
        self.transport.borrow().clone()
    }
}

impl Transport for RpcLink {
    fn send(&self, to: NodeId, group: GroupId, payload: Bytes) {
        let Some(t) = self.transport.borrow().clone() else {
            return;
        };
        let core = self
            .routes
            .borrow()
            .get(&group)
            .copied()
            .unwrap_or(super::CATALOG_CORE);
        if let Err(e) = t.send((broker_of(to), core), group, payload) {
            tracing::debug!(to, group, error = %e, "raft message not sent");
        }
    }
}

/// What a core of a clustered broker holds for replication.
pub struct Replication {
    /// This broker's id (Kafka's).
    pub broker: i32,
    /// Every broker's id, sorted.
    pub brokers: Vec<i32>,
    pub host: Rc<ReplicaHost>,
    pub link: Rc<RpcLink>,
    /// `replica.lag.time.max.ms` in Raft ticks.
    pub lag_ticks: u64,
}

impl Replication {
    pub fn new(broker: i32, brokers: Vec<i32>, cores: usize, lag: Duration) -> Replication {
        let link = RpcLink::new(cores);
        let host = Host::new(link.clone(), Duration::from_millis(RAFT_TICK_MS));
        Replication {
            broker,
            brokers,
            host,
            link,
            lag_ticks: (lag.as_millis() as u64 / RAFT_TICK_MS).max(1),
        }
    }

    /// Whether this broker holds a replica of a partition assigned to `replicas`.
    pub fn holds(&self, replicas: &[u64]) -> bool {
        replicas.contains(&(self.broker as u64))
    }
}
