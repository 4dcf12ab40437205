//! What a clustered broker knows of the cluster right now, gathered from its cores for
//! Metadata and DescribeCluster: which broker leads each partition it holds a replica of
//! (and in which term, with its in-sync replicas when known), which broker is the controller, and the brokers' Kafka listeners.

use std::collections::HashMap;
use std::rc::Rc;

use super::mesh::{Call, LocalFuture, Stage};
use super::{Shard, TopicPartition, CATALOG_CORE};
use crate::replication::host::Published;
use crate::replication::NodeId;

/// The leadership of every replica a core holds, with its in-sync replicas when known.
pub struct Leaderships;

impl Call<Shard> for Leaderships {
    type Reply = Vec<(TopicPartition, Published, Option<Vec<NodeId>>)>;
    fn run(self, shard: Rc<Shard>, _: Stage) -> LocalFuture<Self::Reply> {
        Box::pin(async move {
            shard
                .registry
                .all()
                .into_iter()
                .filter_map(|(tp, p)| p.leadership().map(|l| (tp, l, p.in_sync())))
                .collect()
        })
    }
}

/// The controller's leader, asked of the core that hosts the controller group.
pub struct ControllerId;

impl Call<Shard> for ControllerId {
    type Reply = Option<i32>;
    fn run(self, shard: Rc<Shard>, _: Stage) -> LocalFuture<Self::Reply> {
        Box::pin(async move {
            let me = shard.replication.as_ref().map_or(0, |r| r.broker);
            shard.controller_id(me)
        })
    }
}

/// A snapshot of the cluster as this broker sees it.
#[derive(Debug, Default)]
pub struct ClusterView {
    pub controller: Option<i32>,
    pub leaders: HashMap<TopicPartition, Published>,
    /// The in-sync replicas (Raft node ids) of the partitions whose ISR this broker knows.
    pub in_sync: HashMap<TopicPartition, Vec<NodeId>>,
    /// Every other broker whose Kafka listener this core has learned (`host:port`).
    pub listeners: Vec<(i32, String)>,
}

impl Shard {
    /// Gathers a [`ClusterView`]; `None` for a broker that is not part of a cluster.
    pub async fn cluster_view(self: &Rc<Self>) -> Option<ClusterView> {
        let r = self.replication.as_ref()?;
        let mut view = ClusterView {
            controller: self
                .mesh
                .run(self, CATALOG_CORE, ControllerId)
                .await
                .ok()
                .flatten(),
            ..ClusterView::default()
        };
        let pending: Vec<_> = (0..self.shards)
            .map(|core| self.mesh.call(self, core, Leaderships))
            .collect();
        for p in pending {
            if let Ok(list) = p.reply().await {
                for (tp, leadership, in_sync) in list {
                    if let Some(ids) = in_sync {
                        view.in_sync.insert(tp.clone(), ids);
                    }
                    view.leaders.insert(tp, leadership);
                }
            }
        }
        if let Some(t) = r.link.transport() {
            view.listeners = t.kafka_listeners().into_iter().collect();
        }
        Some(view)
    }
}
