//! AlterReplicaLogDirs (key 34, v1–v2): move replicas between the broker's log dirs. This
//! broker has one log dir (the data dir, as DescribeLogDirs names it), so every replica is
//! already where it can go: any other dir is LOG_DIR_NOT_FOUND; that dir is answered NONE for
//! a partition the broker has (nothing to move) and UNKNOWN_TOPIC_OR_PARTITION for one it has
//! not. These are Kafka's answers for a broker with one log dir, checked in this order.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, TopicName,
};

use super::Ctx;
use crate::kafka::errors;

pub async fn handle(
    ctx: &Ctx,
    req: AlterReplicaLogDirsRequest,
) -> Option<AlterReplicaLogDirsResponse> {
    let dir = &ctx.broker.data_dir;
    let canonical = std::fs::canonicalize(dir).ok();
    let is_ours = |path: &str| {
        let p = std::path::Path::new(path);
        p == dir.as_path() || canonical.as_deref() == Some(p)
    };
    let cat = ctx.shard.catalog();
    let mut by_topic: BTreeMap<TopicName, Vec<AlterReplicaLogDirPartitionResult>> = BTreeMap::new();
    for d in req.dirs {
        let ours = is_ours(d.path.as_str());
        for t in d.topics {
            let count = cat.topic(&t.name.0).map(|m| m.partitions);
            let results = by_topic.entry(t.name).or_default();
            for p in t.partitions {
                let code = if !ours {
                    errors::LOG_DIR_NOT_FOUND
                } else if count.is_some_and(|n| p >= 0 && p < n) {
                    errors::NONE
                } else {
                    errors::UNKNOWN_TOPIC_OR_PARTITION
                };
                results.push(
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(p)
                        .with_error_code(code),
                );
            }
        }
    }
    let results = by_topic
        .into_iter()
        .map(|(name, partitions)| {
            AlterReplicaLogDirTopicResult::default()
                .with_topic_name(name)
                .with_partitions(partitions)
        })
        .collect();
    Some(AlterReplicaLogDirsResponse::default().with_results(results))
}
