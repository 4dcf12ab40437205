//! Metadata (key 3): brokers, topics and partitions, auto-creating unknown topics when the
//! request allows it and the broker is configured to. A one-node broker answers for itself;
//! a clustered broker lists every broker whose listener it has learned, each partition's
//! leader and leader epoch (the Raft term) as its replica knows them, the in-sync replicas as
//! the leader judged them (`crate::replication::in_sync`), LEADER_NOT_AVAILABLE
//! for a partition with no known leader, and the controller.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use std::rc::Rc;

use super::{str_bytes, Ctx};
use crate::cluster::{Catalog, CatalogError, TopicMeta};
use crate::kafka::errors;
use crate::replication::Role;
use crate::shard::cluster_view::ClusterView;
use crate::shard::replicas::{broker_of, raft_id};
use crate::shard::TopicPartition;

/// A clustered broker's view, for the entries.
pub(super) struct Cluster {
    catalog: Rc<Catalog>,
    view: ClusterView,
}

impl Cluster {
    /// This broker's view of the cluster; `None` for a broker alone.
    pub(super) async fn gather(ctx: &Ctx) -> Option<Cluster> {
        let view = ctx.shard.cluster_view().await?;
        Some(Cluster {
            catalog: ctx.shard.catalog(),
            view,
        })
    }
}

/// `host:port` (or `[v6]:port`) split for a broker entry.
fn split_listener(listener: &str) -> Option<(String, i32)> {
    let (host, port) = listener.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// One partition as Metadata and DescribeTopicPartitions report it.
pub(super) struct PartitionView {
    /// NONE, or LEADER_NOT_AVAILABLE while no leader is known.
    pub error_code: i16,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
}

/// Partition `p` of `t` as this broker (`node`) knows it: alone, it leads every partition in
/// epoch 0; in a cluster, the leader and epoch its replica knows, the ISR the leader judged.
pub(super) fn partition_view(
    t: &TopicMeta,
    p: i32,
    node: i32,
    cluster: Option<&Cluster>,
) -> PartitionView {
    let Some((c, replicas)) = cluster.and_then(|c| c.catalog.replicas(&t.name, p).map(|r| (c, r)))
    else {
        return PartitionView {
            error_code: errors::NONE,
            leader: node,
            leader_epoch: 0,
            replicas: vec![BrokerId(node)],
            isr: vec![BrokerId(node)],
        };
    };
    let tp = TopicPartition {
        topic: t.name.clone(),
        partition: p,
    };
    let nodes: Vec<BrokerId> = replicas.iter().map(|r| BrokerId(*r as i32)).collect();
    let leadership = c.view.leaders.get(&tp);
    let leader = match leadership {
        Some(l) => match l.role {
            Role::Leader => Some(node),
            _ => l.leader.map(broker_of),
        },
        // This broker holds no replica, so it does not follow the group: it names the
        // preferred replica, which is the leader unless a failover moved it (the client then
        // hears NOT_LEADER_OR_FOLLOWER there and asks a replica).
        None => replicas.first().map(|r| *r as i32),
    };
    // The leader's judgement (Kafka's ISR under Raft); every replica when this broker has
    // not heard it.
    let isr = match c.view.in_sync.get(&tp) {
        Some(ids) => replicas
            .iter()
            .filter(|r| ids.contains(&raft_id(**r as i32)))
            .map(|r| BrokerId(*r as i32))
            .collect(),
        None => nodes.clone(),
    };
    PartitionView {
        error_code: if leader.is_some() {
            errors::NONE
        } else {
            errors::LEADER_NOT_AVAILABLE
        },
        leader: leader.unwrap_or(-1),
        leader_epoch: leadership.map_or(-1, |l| l.term as i32),
        replicas: nodes,
        isr,
    }
}

fn topic_entry(t: &TopicMeta, node: i32, cluster: Option<&Cluster>) -> MetadataResponseTopic {
    let partitions = (0..t.partitions)
        .map(|p| {
            let v = partition_view(t, p, node, cluster);
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_error_code(v.error_code)
                .with_leader_id(BrokerId(v.leader))
                .with_leader_epoch(v.leader_epoch)
                .with_replica_nodes(v.replicas)
                .with_isr_nodes(v.isr)
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&t.name))))
        .with_topic_id(uuid::Uuid::from_bytes(t.id))
        .with_is_internal(t.name == crate::group::offsets::OFFSETS_TOPIC)
        .with_partitions(partitions)
}

fn missing(name: Option<TopicName>, id: uuid::Uuid, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name)
        .with_topic_id(id)
        .with_error_code(code)
}

pub async fn handle(ctx: &Ctx, req: MetadataRequest, version: i16) -> Option<MetadataResponse> {
    let b = &ctx.broker;
    let node = b.node_id;
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let wanted = match req.topics {
        Some(t) if !(version == 0 && t.is_empty()) => Some(t),
        _ => None,
    };
    let auto_create = b.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let cluster = Cluster::gather(ctx).await;
    let cluster = cluster.as_ref();
    let mut topics = Vec::new();
    match wanted {
        None => {
            let cat = ctx.shard.catalog();
            topics.extend(cat.topics().map(|t| topic_entry(t, node, cluster)));
        }
        Some(list) => {
            for want in list {
                let by_id = !want.topic_id.is_nil();
                let name = want.name.as_ref().map(|n| n.0.to_string());
                let found = {
                    let cat = ctx.shard.catalog();
                    match (&name, by_id) {
                        (_, true) => cat.topic_by_id(want.topic_id.as_bytes()).cloned(),
                        (Some(n), false) => cat.topic(n).cloned(),
                        (None, false) => None,
                    }
                };
                let entry = match (found, name) {
                    (Some(t), _) => topic_entry(&t, node, cluster),
                    (None, _) if by_id => missing(None, want.topic_id, errors::UNKNOWN_TOPIC_ID),
                    (None, Some(n)) if auto_create => {
                        let created = ctx
                            .shard
                            .create_topic(n.clone(), b.default_partitions, vec![])
                            .await;
                        match created {
                            Ok(t) => {
                                tracing::info!(topic = %n, partitions = t.partitions, "auto-created topic");
                                topic_entry(&t, node, cluster)
                            }
                            Err(CatalogError::TopicExists(_)) => {
                                let cat = ctx.shard.catalog();
                                cat.topic(&n)
                                    .map(|t| topic_entry(t, node, cluster))
                                    .unwrap_or_else(|| {
                                        missing(
                                            want.name.clone(),
                                            want.topic_id,
                                            errors::UNKNOWN_TOPIC_OR_PARTITION,
                                        )
                                    })
                            }
                            Err(e) => {
                                missing(want.name.clone(), want.topic_id, errors::catalog_code(&e))
                            }
                        }
                    }
                    (None, _) => missing(
                        want.name.clone(),
                        want.topic_id,
                        errors::UNKNOWN_TOPIC_OR_PARTITION,
                    ),
                };
                topics.push(entry);
            }
        }
    }
    let mut brokers = vec![MetadataResponseBroker::default()
        .with_node_id(BrokerId(node))
        .with_host(str_bytes(&b.advertised_host))
        .with_port(b.advertised_port as i32)];
    let mut controller = node;
    if let Some(c) = cluster {
        for (id, listener) in &c.view.listeners {
            if let Some((host, port)) = split_listener(listener) {
                brokers.push(
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(*id))
                        .with_host(str_bytes(&host))
                        .with_port(port),
                );
            }
        }
        brokers.sort_by_key(|b| b.node_id.0);
        controller = c.view.controller.unwrap_or(-1);
    }
    Some(
        MetadataResponse::default()
            .with_brokers(brokers)
            .with_cluster_id(Some(str_bytes(&b.cluster_id)))
            .with_controller_id(BrokerId(controller))
            .with_topics(topics),
    )
}
