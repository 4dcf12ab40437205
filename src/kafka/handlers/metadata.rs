//! Metadata (key 3): brokers (just this one), topics and partitions, auto-creating unknown
//! topics when the request allows it and the broker is configured to.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::{str_bytes, Ctx};
use crate::cluster::{CatalogError, TopicMeta};
use crate::kafka::errors;

fn topic_entry(t: &TopicMeta, node: i32) -> MetadataResponseTopic {
    let partitions = (0..t.partitions)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(node))
                .with_leader_epoch(0)
                .with_replica_nodes(vec![BrokerId(node)])
                .with_isr_nodes(vec![BrokerId(node)])
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
    let mut topics = Vec::new();
    match wanted {
        None => {
            let cat = ctx.shard.catalog();
            topics.extend(cat.topics().map(|t| topic_entry(t, node)));
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
                    (Some(t), _) => topic_entry(&t, node),
                    (None, _) if by_id => missing(None, want.topic_id, errors::UNKNOWN_TOPIC_ID),
                    (None, Some(n)) if auto_create => {
                        let created = ctx
                            .shard
                            .create_topic(n.clone(), b.default_partitions, vec![])
                            .await;
                        match created {
                            Ok(t) => {
                                tracing::info!(topic = %n, partitions = t.partitions, "auto-created topic");
                                topic_entry(&t, node)
                            }
                            Err(CatalogError::TopicExists(_)) => {
                                let cat = ctx.shard.catalog();
                                cat.topic(&n)
                                    .map(|t| topic_entry(t, node))
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
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(node))
        .with_host(str_bytes(&b.advertised_host))
        .with_port(b.advertised_port as i32);
    Some(
        MetadataResponse::default()
            .with_brokers(vec![broker])
            .with_cluster_id(Some(str_bytes(&b.cluster_id)))
            .with_controller_id(BrokerId(node))
            .with_topics(topics),
    )
}
