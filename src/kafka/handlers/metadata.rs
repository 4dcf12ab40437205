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
struct Cluster {
    catalog: Rc<Catalog>,
    view: ClusterView,
}

/// `host:port` (or `[v6]:port`) split for a broker entry.
fn split_listener(listener: &str) -> Option<(String, i32)> {
    let (host, port) = listener.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

fn topic_entry(t: &TopicMeta, node: i32, cluster: Option<&Cluster>) -> MetadataResponseTopic {
    let partitions = (0..t.partitions)
        .map(
            |p| match cluster.and_then(|c| c.catalog.replicas(&t.name, p).map(|r| (c, r))) {
                Some((c, replicas)) => {
                    let tp = TopicPartition {
                        topic: t.name.clone(),
                        partition: p,
                    };
                    let nodes: Vec<BrokerId> =
                        replicas.iter().map(|r| BrokerId(*r as i32)).collect();
                    let leadership = c.view.leaders.get(&tp);
                    let leader = match leadership {
                        Some(l) => match l.role {
                            Role::Leader => Some(node),
                            _ => l.leader.map(broker_of),
                        },
                        // This broker holds no replica, so it does not follow the group: it names
                        // the preferred replica, which is the leader unless a failover moved it
                        // (the client then hears NOT_LEADER_OR_FOLLOWER there and asks a replica).
                        None => replicas.first().map(|r| *r as i32),
                    };
                    // The leader's judgement (Kafka's ISR under Raft); every replica when
                    // this broker has not heard it.
                    let isr = match c.view.in_sync.get(&tp) {
                        Some(ids) => replicas
                            .iter()
                            .filter(|r| ids.contains(&raft_id(**r as i32)))
                            .map(|r| BrokerId(*r as i32))
                            .collect(),
                        None => nodes.clone(),
                    };
                    MetadataResponsePartition::default()
                        .with_partition_index(p)
                        .with_error_code(if leader.is_some() {
                            errors::NONE
                        } else {
                            errors::LEADER_NOT_AVAILABLE
                        })
                        .with_leader_id(BrokerId(leader.unwrap_or(-1)))
                        .with_leader_epoch(leadership.map_or(-1, |l| l.term as i32))
                        .with_replica_nodes(nodes)
                        .with_isr_nodes(isr)
                }
                None => MetadataResponsePartition::default()
                    .with_partition_index(p)
                    .with_leader_id(BrokerId(node))
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![BrokerId(node)])
                    .with_isr_nodes(vec![BrokerId(node)]),
            },
        )
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
    let cluster = ctx.shard.cluster_view().await.map(|view| Cluster {
        catalog: ctx.shard.catalog(),
        view,
    });
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
