//! DescribeTopicPartitions (key 75, KIP-966): topics with their partitions, in pages. The
//! Admin client of Kafka 4.x describes topics by name with it. As in Kafka: the named topics
//! (or every topic when none is named) are answered in name order, from the cursor's topic
//! and partition on, until the answer holds `ResponsePartitionLimit` partitions (at most
//! [`DESCRIBE_TOPIC_PARTITIONS_LIMIT`]); the next cursor then says where to go on. A named
//! topic that does not exist is UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION when its
//! name cannot be a topic's); a cursor naming a topic outside the list, or a negative
//! partition, makes the request invalid. This broker leads every partition, alone in its
//! replica set and ISR; there are no eligible leader replicas beyond it (KIP-966's ELR is
//! empty), and with no ACLs every topic operation is authorized.

use std::collections::BTreeSet;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};

use super::{str_bytes, Ctx};
use crate::cluster::{validate_topic_name, TopicMeta};
use crate::kafka::errors;
use crate::limits::DESCRIBE_TOPIC_PARTITIONS_LIMIT;

/// Kafka's operations on a topic (AclOperation codes), all authorized without ACLs: READ,
/// WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
const TOPIC_OPERATIONS: i32 =
    1 << 3 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 10 | 1 << 11;

/// Kafka's internal topics (`Topic.isInternal`).
fn is_internal(name: &str) -> bool {
    super::produce::KAFKA_INTERNAL_TOPICS.contains(&name)
}

pub async fn handle(
    ctx: &Ctx,
    req: DescribeTopicPartitionsRequest,
) -> Option<DescribeTopicPartitionsResponse> {
    let cat = ctx.shard.catalog();
    let all = req.topics.is_empty();
    let (cursor_topic, cursor_partition) = req.cursor.as_ref().map_or((String::new(), 0), |c| {
        (c.topic_name.0.to_string(), c.partition_index)
    });
    let names: BTreeSet<String> = if all {
        cat.topics().map(|t| t.name.clone()).collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    let names: Vec<String> = names.into_iter().filter(|n| *n >= cursor_topic).collect();
    let cursor_outside = req.cursor.is_some() && !all && !names.contains(&cursor_topic);
    if cursor_outside || cursor_partition < 0 {
        let topics = req
            .topics
            .iter()
            .map(|t| {
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(t.name.clone()))
                    .with_error_code(errors::INVALID_REQUEST)
            })
            .collect();
        return Some(DescribeTopicPartitionsResponse::default().with_topics(topics));
    }
    let node = ctx.broker.node_id;
    let cluster = super::metadata::Cluster::gather(ctx).await;
    let mut remaining = req
        .response_partition_limit
        .clamp(1, DESCRIBE_TOPIC_PARTITIONS_LIMIT);
    let mut resp = DescribeTopicPartitionsResponse::default();
    for name in names {
        if remaining == 0 {
            // Every partition of the topics before is in: go on at this topic's first.
            resp.next_cursor = Some(cursor(&name, 0));
            break;
        }
        let Some(meta) = cat.topic(&name) else {
            if !all {
                let code = if validate_topic_name(&name).is_ok() {
                    errors::UNKNOWN_TOPIC_OR_PARTITION
                } else {
                    errors::INVALID_TOPIC_EXCEPTION
                };
                resp.topics.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_name(Some(TopicName(str_bytes(&name))))
                        .with_error_code(code)
                        .with_is_internal(is_internal(&name))
                        .with_topic_authorized_operations(TOPIC_OPERATIONS),
                );
            }
            continue;
        };
        let first = if name == cursor_topic {
            cursor_partition
        } else {
            0
        };
        let (topic, next) = page(meta, first, remaining, node, cluster.as_ref());
        remaining -= topic.partitions.len() as i32;
        resp.topics.push(topic);
        if let Some(next) = next {
            resp.next_cursor = Some(cursor(&name, next));
            break;
        }
    }
    Some(resp)
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(str_bytes(topic)))
        .with_partition_index(partition)
}

/// The partitions of `t` from `first`, at most `max` of them, and the next partition when
/// some are left over.
fn page(
    t: &TopicMeta,
    first: i32,
    max: i32,
    node: i32,
    cluster: Option<&super::metadata::Cluster>,
) -> (DescribeTopicPartitionsResponseTopic, Option<i32>) {
    let end = t.partitions.min(first.saturating_add(max));
    let partitions = (first..end)
        .map(|p| {
            let v = super::metadata::partition_view(t, p, node, cluster);
            DescribeTopicPartitionsResponsePartition::default()
                .with_partition_index(p)
                .with_error_code(v.error_code)
                .with_leader_id(BrokerId(v.leader))
                .with_leader_epoch(v.leader_epoch)
                .with_replica_nodes(v.replicas)
                .with_isr_nodes(v.isr)
                .with_eligible_leader_replicas(Some(vec![]))
                .with_last_known_elr(Some(vec![]))
        })
        .collect();
    let topic = DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&t.name))))
        .with_topic_id(uuid::Uuid::from_bytes(t.id))
        .with_is_internal(is_internal(&t.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(TOPIC_OPERATIONS);
    (topic, (end < t.partitions).then_some(end))
}
